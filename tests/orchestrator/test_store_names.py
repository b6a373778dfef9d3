"""The job store's names: a name column with a unique index per namespace (no entry for a
job named by its ID), lookups by ID, name or prefix in that order, a new version with a spec
of its own, and the migration of stores written without the column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bacalhau.errors import JobNotFound, MultipleJobsFound, RevisionConflict
from bacalhau.models import Event, Job, JobStateType, now_ns
from bacalhau.orchestrator import JobStore
from tests.orchestrator.test_store_layout import BEFORE


def _stored(job_id: str, name: str = "", *, namespace: str = "default", at: int = 0) -> Job:
    j = Job.from_dict(
        {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )
    j.id, j.name, j.namespace = job_id, name or job_id, namespace
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = at or now_ns()
    return j


def test_a_name_is_looked_up_in_its_namespace_after_the_id_and_before_a_prefix(
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_stored("j-abc1-0000", "nightly"))
        store.create_job(_stored("j-abc2-0000", "nightly", namespace="dev"))
        # Named as another job's full ID, and as a prefix of other jobs' IDs.
        store.create_job(_stored("j-ffff-0000", "j-abc1-0000"))
        store.create_job(_stored("j-eeee-0000", "j-abc"))
    assert store.resolve_job_id("nightly") == "j-abc1-0000"
    assert store.resolve_job_id("nightly", "default") == "j-abc1-0000"
    assert store.resolve_job_id("nightly", "dev") == "j-abc2-0000"
    with pytest.raises(JobNotFound):
        store.resolve_job_id("nightly", "prod")
    # A full ID wins over a name; a name wins over a prefix that matches two jobs.
    assert store.resolve_job_id("j-abc1-0000") == "j-abc1-0000"
    assert store.resolve_job_id("j-abc") == "j-eeee-0000"
    with pytest.raises(MultipleJobsFound):
        store.resolve_job_id("j-abc", "dev")
    # A prefix still finds its one job; IDs are found whatever the namespace.
    assert store.resolve_job_id("j-abc2", "default") == "j-abc2-0000"


def test_a_job_named_by_its_id_costs_the_name_index_nothing(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_stored("j-plain-0000"))
        store.create_job(_stored("j-named-0000", "mine"))
    rows = dict(store._db.execute("SELECT id, name FROM jobs").fetchall())
    assert rows == {"j-plain-0000": None, "j-named-0000": "mine"}
    (entries,) = store._db.execute(
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_by_name WHERE name IS NOT NULL"
    ).fetchone()
    assert entries == 1
    # Its name is its ID, in its namespace.
    assert store.job_id_named("default", "j-plain-0000") == "j-plain-0000"
    assert store.job_id_named("dev", "j-plain-0000") is None
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE namespace = ?1 AND name = ?2 UNION ALL"
        " SELECT id FROM jobs WHERE id = ?2 AND namespace = ?1 AND name IS NULL LIMIT 1",
        ("default", "mine"),
    ).fetchall()
    details = " ".join(str(r[3]) for r in plan)
    assert "USING INDEX jobs_by_name" in details and "SCAN" not in details


def test_two_jobs_cannot_share_a_name_in_a_namespace(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_stored("j-one-0000", "same"))
        store.create_job(_stored("j-two-0000", "same", namespace="dev"))
    with pytest.raises(RevisionConflict, match="already exists"), store.transaction():
        store.create_job(_stored("j-three-0000", "same"))
    assert store.resolve_job_id("same") == "j-one-0000"
    with pytest.raises(JobNotFound):
        store.get_job("j-three-0000")


def test_a_new_version_with_a_spec_of_its_own_keeps_the_jobs_identity(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first = _stored("j-up-0000", "web", at=1_000)
    with store.transaction():
        store.create_job(first)
    submitted = _stored("j-something-else", "ignored")
    submitted.labels = {"tier": "gold"}
    submitted.count = 3
    new = store.add_job_version(
        "j-up-0000", event=Event(message="updated", topic="Submission"), spec=submitted
    )
    assert (new.id, new.name, new.namespace, new.version) == ("j-up-0000", "web", "default", 1)
    assert (new.create_time, new.count, new.state) == (1_000, 3, JobStateType.PENDING)
    got = store.get_job(store.resolve_job_id("web"))
    assert (got.version, got.count, got.labels) == (1, 3, {"tier": "gold"})
    page = store.page_jobs(labels_match=lambda labels: labels.get("tier") == "gold")
    assert page.ids == ["j-up-0000"]
    assert [v.count for v in store.job_versions("j-up-0000")] == [1, 3]


def test_a_store_without_the_name_column_is_migrated_newest_job_keeping_a_shared_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    with store.transaction():
        # As an earlier version let happen: a name submitted twice made two jobs.
        store.create_job(_stored("j-older-000", "x", at=1_000))
        store.create_job(_stored("j-plain-000", at=1_500))
        store.create_job(_stored("j-other-000", "x", namespace="dev", at=1_700))
    store._db.execute("DROP INDEX jobs_by_name")
    store._db.execute("ALTER TABLE jobs DROP COLUMN name")
    newer = _stored("j-newer-000", "x", at=2_000)
    store._db.execute(
        "INSERT INTO jobs (id, namespace, state, state_message, revision, version,"
        " create_time, modify_time, labels, size) SELECT ?, namespace, state, state_message,"
        " revision, version, ?, ?, labels, size FROM jobs WHERE id = 'j-older-000'",
        (newer.id, 2_000, 2_000),
    )
    store._db.execute(
        "INSERT INTO job_specs (job_id, version, data) SELECT ?, version,"
        " json_set(data, '$.ID', ?) FROM job_specs WHERE job_id = 'j-older-000'",
        (newer.id, newer.id),
    )
    store.close()
    again = JobStore(path)
    assert again.resolve_job_id("x") == "j-newer-000"
    assert again.resolve_job_id("x", "dev") == "j-other-000"
    assert again.get_job("j-older-000").name == "x"  # still found by its ID
    rows = dict(again._db.execute("SELECT id, name FROM jobs").fetchall())
    assert rows == {
        "j-older-000": None,
        "j-newer-000": "x",
        "j-plain-000": None,
        "j-other-000": "x",
    }
    again.close()
    # A second open finds nothing left to migrate.
    assert JobStore(path).resolve_job_id("x") == "j-newer-000"


def test_a_store_of_the_layout_before_spec_tables_gets_its_names(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    shutil.copy(BEFORE, path)
    store = JobStore(path)
    assert store.resolve_job_id("old-2") == "j-old-2"
    store.close()
