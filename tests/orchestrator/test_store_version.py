"""The job store says its layout (``PRAGMA user_version``): a node refuses a store written by
a newer one, and a store an older node wrote jobs into without their names gets them back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bacalhau.errors import InternalError
from bacalhau.orchestrator import JobStore
from tests.orchestrator.test_store_names import _stored


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
    return int(version)


def test_a_store_says_its_layout_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore(path).close()
    assert _user_version(path) == 1
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=7")  # as a newer node would leave it
    with pytest.raises(InternalError) as refused:
        JobStore(path)
    assert f"job store {path} has schema 7, newer than this node understands (1)" in str(
        refused.value.message
    )
    assert "run the newer version" in (refused.value.hint or "")
    assert _user_version(path) == 7  # left as it was


def test_names_an_older_node_left_empty_are_filled_again(tmp_path: Path) -> None:
    """A node of the layout before names wrote two jobs into this store (schema 0, with the
    name column): one under a new name, one under a name an earlier job holds. They are found
    by name again, the newest job keeping a shared name, as the first migration does."""
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    with store.transaction():
        store.create_job(_stored("j-first-000", "shared", at=1_000))
    with store.transaction():
        store.create_job(_stored("j-later-000", "shared-too", at=1_500))
        store.create_job(_stored("j-fresh-000", "fresh", at=2_500))
    later = _stored("j-later-000", "shared", at=2_000)
    # What the older node left: its jobs' rows without names (the specs say them), and the
    # layout's version untouched by it (it knew none; a store of before this one said 0).
    store._db.execute("UPDATE jobs SET name = NULL WHERE id IN ('j-later-000', 'j-fresh-000')")
    store._db.execute(
        "UPDATE job_specs SET data = json_set(data, '$.Name', ?) WHERE job_id = ?",
        (later.name, later.id),
    )
    store._db.execute("UPDATE jobs SET create_time = 2000 WHERE id = 'j-later-000'")
    store._db.execute("PRAGMA user_version=0")
    store.close()
    with sqlite3.connect(path) as db:
        names = dict(db.execute("SELECT id, name FROM jobs").fetchall())
    assert names == {"j-first-000": "shared", "j-later-000": None, "j-fresh-000": None}
    again = JobStore(path)
    assert again.resolve_job_id("fresh") == "j-fresh-000"
    assert again.resolve_job_id("shared") == "j-later-000"
    assert again.get_job("j-first-000").name == "shared"  # still found by its ID
    again.close()
    assert _user_version(path) == 1
