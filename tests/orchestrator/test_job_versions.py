"""Job versions: a rerun stores the spec again as a new version (a large inline module
shared, not copied), every version reads back whole, and the scheduler stops what an earlier
version still runs while placing the new one."""

from __future__ import annotations

from pathlib import Path

from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    now_ns,
)
from bacalhau.orchestrator import JobStore, schedule
from tests.orchestrator.test_scheduler import NOW, ev, job, node

D = ExecutionDesiredStateType
E = ExecutionStateType
MODULE = "data:application/wasm;base64," + "A" * 4096


def _wasm_job(job_id: str) -> Job:
    j = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "wasm",
                        "Params": {
                            "EntryModule": {
                                "Source": {"Type": "inline", "Params": {"URL": MODULE}},
                                "Target": "/app/m.wasm",
                            }
                        },
                    },
                }
            ],
        }
    )
    j.id, j.name, j.namespace = job_id, job_id, "default"
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = now_ns()
    return j


def _url(j: Job) -> object:
    return j.task.engine.params["EntryModule"]["Source"]["Params"]["URL"]


def test_a_rerun_is_a_new_version_of_the_same_spec(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_wasm_job("j-rerun"))
    store.update_job_state("j-rerun", JobStateType.RUNNING)
    store.update_job_state("j-rerun", JobStateType.COMPLETED)
    rerun = store.add_job_version("j-rerun", event=Event(message="rerun", topic="Submission"))
    assert (rerun.version, rerun.state) == (1, JobStateType.PENDING)
    got = store.get_job("j-rerun")
    assert (got.version, got.state, _url(got)) == (1, JobStateType.PENDING, MODULE)
    versions = store.job_versions("j-rerun")
    assert [v.version for v in versions] == [0, 1]
    assert all(_url(v) == MODULE for v in versions)
    (blobs,) = store._db.execute("SELECT COUNT(*) FROM blobs").fetchone()
    assert blobs == 1
    last = store.history_of("j-rerun")[-1]
    assert (last.job_state_previous, last.job_state_new) == (
        JobStateType.COMPLETED,
        JobStateType.PENDING,
    )


def test_the_scheduler_stops_an_earlier_versions_executions() -> None:
    j = job()
    j.version = 1
    old = Execution(
        id="e-old", job_id="j-1", node_id="a", compute_state=E.BID_ACCEPTED,
        desired_state=D.RUNNING, job_version=0, create_time=NOW,
    )  # fmt: skip
    plan = schedule(j, [old], [node("a"), node("b")], ev(), now=NOW)
    assert [(c.execution_id, c.desired_state) for c in plan.changes] == [("e-old", D.STOPPED)]
    assert [e.job_version for e in plan.new_executions] == [1]


def test_a_new_versions_timeouts_count_from_when_it_was_made(tmp_path: Path) -> None:
    """A rerun or an update of a job made long ago gets its whole TotalTimeout and
    QueueTimeout: they count from the version, not from the job's creation (which would
    fail it before it ran)."""
    from bacalhau.orchestrator.schedulers._shared import past_total_timeout

    store = JobStore(tmp_path / "jobs.db")
    old = _wasm_job("j-old")
    old.task.timeouts.total_timeout = 20
    old.create_time = old.modify_time = now_ns() - 3600 * 10**9  # an hour ago
    with store.transaction():
        store.create_job(old)
    assert past_total_timeout(store.get_job("j-old"), now_ns())  # version 1: long past
    store.add_job_version("j-old", event=Event(message="rerun", topic="Submission"))
    rerun = store.get_job("j-old")
    assert rerun.create_time == old.create_time  # still the job's, as Bacalhau keeps it
    assert now_ns() - rerun.started_ns() < 60 * 10**9
    assert past_total_timeout(rerun, now_ns()) == ""
    assert past_total_timeout(rerun, rerun.started_ns() + 21 * 10**9)
