"""Retention: terminal jobs older than the configured age go, with everything of theirs;
live jobs and younger terminal jobs stay and still list."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.errors import JobNotFound
from bacalhau.models import (
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    now_ns,
)
from bacalhau.orchestrator import JobStore
from bacalhau.orchestrator._retention import JobRetention

E = ExecutionStateType
DAY = 24 * 3600 * 1_000_000_000


def _job(job_id: str, created: int) -> Job:
    j = Job.from_dict(
        {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )
    j.id, j.name, j.namespace = job_id, job_id, "default"
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = created
    return j


def _add(store: JobStore, job_id: str, end: JobStateType | None, age_days: float) -> None:
    """A job with an execution, an evaluation and history, last changed ``age_days`` ago."""
    now = now_ns()
    with store.transaction():
        store.create_job(_job(job_id, now))
        store.create_evaluation(
            Evaluation(
                id=f"ev-{job_id}", job_id=job_id, namespace="default", type="batch",
                triggered_by="job-register",
            )
        )  # fmt: skip
        store.remember_idempotent(f"token-{job_id}", job_id, f"ev-{job_id}", [])
    store.create_execution(
        Execution(
            id=f"e-{job_id}", job_id=job_id, node_id="n-1", namespace="default",
            desired_state=ExecutionDesiredStateType.PENDING, compute_state=E.NEW,
            create_time=now,
        )
    )  # fmt: skip
    store.update_job_state(job_id, JobStateType.RUNNING)
    if end is not None:
        store.update_execution(f"e-{job_id}", compute_state=E.ASK_FOR_BID)
        store.update_execution(f"e-{job_id}", compute_state=E.FAILED)
        store.update_job_state(job_id, end)
    store._db.execute(
        "UPDATE jobs SET modify_time = ? WHERE id = ?", (now - int(age_days * DAY), job_id)
    )


def _count(store: JobStore, table: str, job_id: str) -> int:
    column = "id" if table == "jobs" else "job_id"
    row = store._db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (job_id,))
    return int(row.fetchone()[0])


async def test_old_terminal_jobs_go_with_everything_of_theirs(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    _add(store, "j-old-done", JobStateType.COMPLETED, 8)
    _add(store, "j-old-failed", JobStateType.FAILED, 30)
    _add(store, "j-old-running", None, 30)  # live, however old: kept
    _add(store, "j-young-done", JobStateType.COMPLETED, 6)
    assert store.history_of("j-old-done")  # its log is in memory too
    retention = JobRetention(store, max_age=7 * 24 * 3600, batch=1)
    assert await retention.sweep() == 2
    # A job whose log was in memory is not found once deleted (lookups trust the logs).
    with pytest.raises(JobNotFound):
        store.resolve_job_id("j-old-done")
    for gone in ("j-old-done", "j-old-failed"):
        for table in ("jobs", "job_specs", "executions", "history", "evaluations", "idempotency"):
            assert _count(store, table, gone) == 0, (gone, table)
        assert store.history_of(gone) == []
    assert store.idempotent_result("token-j-old-done") is None
    kept = {j.id for j in store.list_jobs()}
    assert kept == {"j-old-running", "j-young-done"}
    assert store.get_execution("e-j-young-done").compute_state == E.FAILED
    assert _count(store, "history", "j-young-done") > 0
    assert store.page_jobs(namespace="default", limit=10).ids == ["j-old-running", "j-young-done"]
    assert await retention.sweep() == 0
    assert await JobRetention(store, max_age=0).sweep() == 0  # 0 keeps everything
    store.close()
