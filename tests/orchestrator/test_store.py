"""The SQLite job store: transitions enforced, compare-and-set, atomic transactions, restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bacalhau.errors import (
    InternalError,
    InvalidTransition,
    JobNotFound,
    MultipleJobsFound,
    RevisionConflict,
)
from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    now_ns,
)
from bacalhau.orchestrator import JobStore

E = ExecutionStateType


def _job(job_id: str) -> Job:
    j = Job.from_dict(
        {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )
    j.id, j.name, j.namespace = job_id, job_id, "default"
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = now_ns()
    return j


def test_job_transitions_are_enforced(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-aaaa1111"))
    job = store.update_job_state("j-aaaa1111", JobStateType.RUNNING)
    assert job.revision == 2
    store.update_job_state("j-aaaa1111", JobStateType.COMPLETED)
    with pytest.raises(InvalidTransition):
        store.update_job_state("j-aaaa1111", JobStateType.RUNNING)
    with pytest.raises(RevisionConflict):
        store.update_job_state("j-aaaa1111", JobStateType.COMPLETED, expected_revision=1)
    hist = store.history_of("j-aaaa1111")
    assert [h.job_state_new for h in hist] == [JobStateType.RUNNING, JobStateType.COMPLETED]
    assert [h.seq_num for h in hist] == [1, 2]


def test_prefix_lookup(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-abc1"))
        store.create_job(_job("j-abc2"))
    assert store.resolve_job_id("j-abc1") == "j-abc1"
    with pytest.raises(MultipleJobsFound):
        store.resolve_job_id("j-abc")
    with pytest.raises(JobNotFound):
        store.resolve_job_id("j-zzz")
    with pytest.raises(JobNotFound):
        store.resolve_job_id("j-ab%")


def test_execution_cas_and_expected_states(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ex = Execution(id="e-1", job_id="j-1", node_id="n", create_time=1, modify_time=1)
    with store.transaction():
        store.create_job(_job("j-1"))
        store.create_execution(ex)
    store.update_execution("e-1", compute_state=E.ASK_FOR_BID)
    with pytest.raises(RevisionConflict):
        store.update_execution("e-1", compute_state=E.COMPLETED, expected_states=frozenset({E.NEW}))
    with pytest.raises(InvalidTransition):
        store.update_execution("e-1", compute_state=E.PUBLISHING)
    store.update_execution(
        "e-1", compute_state=E.FAILED, desired_state=ExecutionDesiredStateType.STOPPED
    )
    assert store.get_execution("e-1").compute_state == E.FAILED


def test_an_execution_reads_as_its_row_holds_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ex = Execution(id="e-1", job_id="j-1", node_id="n", create_time=1, modify_time=1)
    with store.transaction():
        store.create_job(_job("j-1"))
        store.create_execution(ex)
    asked = store.update_execution("e-1", compute_state=E.ASK_FOR_BID, compute_details={"A": "1"})
    # What a reader does with its copy stays its own.
    asked.compute_message = "changed by its reader"
    store.get_execution("e-1").desired_message = "changed by another"
    # A change rolled back (a whole transaction, or a nested block alone) is not read back.
    with pytest.raises(RuntimeError), store.transaction():
        store.update_execution("e-1", compute_state=E.ASK_FOR_BID_ACCEPTED)
        raise RuntimeError("boom")
    with store.transaction():
        with pytest.raises(RuntimeError), store.transaction():
            store.update_execution("e-1", compute_state=E.ASK_FOR_BID_ACCEPTED)
            raise RuntimeError("boom")
        [within] = store.executions_of("j-1")
    read = store.get_execution("e-1")
    assert within == read
    assert (read.compute_state, read.revision, read.compute_details) == (
        E.ASK_FOR_BID,
        2,
        {"A": "1"},
    )
    assert (read.compute_message, read.desired_message) == ("", "")
    store.close()
    # The same as a store that decodes the row afresh.
    assert JobStore(tmp_path / "jobs.db").get_execution("e-1") == read


def test_transaction_rolls_back_everything(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.create_job(_job("j-1"))
        raise RuntimeError("boom")
    with pytest.raises(JobNotFound):
        store.get_job("j-1")


def test_survives_reopen(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
    store.update_job_state("j-1", JobStateType.RUNNING)
    store.close()
    again = JobStore(tmp_path / "jobs.db")
    assert again.get_job("j-1").state == JobStateType.RUNNING
    assert len(again.history_of("j-1")) == 1


async def test_history_waiters_wake_on_commit(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
    waiter = asyncio.create_task(store.wait_for_history("j-1", after_seq=0, timeout=5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    store.update_job_state("j-1", JobStateType.RUNNING)
    await asyncio.wait_for(waiter, 1)


def _labelled(job_id: str, created: int, namespace: str = "default", **labels: str) -> Job:
    j = _job(job_id)
    j.create_time = j.modify_time = created
    j.namespace = namespace
    j.labels = dict(labels)
    return j


def test_listing_pages_in_sql_and_reads_only_the_page(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        for i in range(6):
            ns = "other" if i == 5 else "default"
            store.create_job(_labelled(f"j-{i}", 100 + i, ns, team="a" if i % 2 else "b"))
    # Spoil the stored document of a job outside the pages read below: listing them must not
    # decode it (only the page's documents are read).
    store._db.execute("UPDATE job_specs SET data = 'not json' WHERE job_id = 'j-4'")
    first = store.page_jobs(namespace="default", limit=2)
    assert [j.id for j in store.read_jobs(first.ids)] == ["j-0", "j-1"] and first.has_more
    second = store.page_jobs(namespace="default", limit=2, after=(101, "j-1"))
    assert [j.id for j in store.read_jobs(second.ids)] == ["j-2", "j-3"]
    teams = store.page_jobs(labels_match=lambda labels: labels.get("team") == "a", limit=2)
    assert [j.id for j in store.read_jobs(teams.ids)] == ["j-1", "j-3"] and teams.has_more
    newest = store.page_jobs(order_by="create_time", reverse=True, limit=1)
    assert [j.id for j in store.read_jobs(newest.ids)] == ["j-5"]
    by_id = store.page_jobs(order_by="id", reverse=True, after=("j-3", "j-3"))
    assert [j.id for j in store.read_jobs(by_id.ids, own_connection=True)] == ["j-2", "j-1", "j-0"]
    legacy = store.page_jobs(namespace="default", offset=2, limit=2)
    assert [j.id for j in store.read_jobs(legacy.ids)] == ["j-2", "j-3"]
    assert not store.page_jobs(namespace="nope").ids


def test_a_store_without_the_labels_column_is_migrated(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_labelled("j-old", 100, team="a"))
        store.create_job(_labelled("j-new", 101))
    # As a store written before listing filtered in SQL: no labels column.
    store._db.execute("ALTER TABLE jobs DROP COLUMN labels")
    store._db.execute("ALTER TABLE jobs DROP COLUMN size")
    store.close()
    again = JobStore(tmp_path / "jobs.db")
    page = again.page_jobs(labels_match=lambda labels: labels.get("team") == "a")
    assert [j.id for j in again.read_jobs(page.ids)] == ["j-old"]
    assert page.size == len(
        again._db.execute("SELECT data FROM job_specs WHERE job_id = 'j-old'").fetchone()[0]
    )


async def test_a_transaction_held_open_by_another_task_is_not_joined(tmp_path: Path) -> None:
    """Work inside a transaction must not suspend; if it does, another task's write would
    silently join that transaction (and commit or roll back with it). It is refused."""
    store = JobStore(tmp_path / "jobs.db")
    suspended, resume = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        with store.transaction():
            store.create_job(_job("j-held"))
            suspended.set()
            await resume.wait()
            raise RuntimeError("the holder fails after suspending")

    task = asyncio.create_task(holder())
    await suspended.wait()
    with pytest.raises(InternalError) as refused:
        store.create_job(_job("j-other"))
    assert refused.value.component == "JobStore"
    resume.set()
    with pytest.raises(RuntimeError):
        await task
    # The holder's rollback took only its own write; the other task can write again.
    store.create_job(_job("j-other"))
    assert [j.id for j in store.list_jobs()] == ["j-other"]
