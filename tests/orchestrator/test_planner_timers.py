"""The planner keeps one safety-net timer chain per waiting job: a delayed evaluation that an
evaluation already waiting for the job makes redundant is not stored or started."""

from __future__ import annotations

from pathlib import Path

from bacalhau.models import Evaluation, Job, JobStateType, new_evaluation_id, now_ns
from bacalhau.orchestrator import JobStore, Plan
from bacalhau.orchestrator._planner import Planner
from tests.orchestrator.test_callbacks import RecordingCompute

S = 1_000_000_000


def _evaluation(job: Job, wait_until: int = 0) -> Evaluation:
    return Evaluation(
        id=new_evaluation_id(), job_id=job.id, namespace="default", type="batch",
        triggered_by="job-queue", wait_until=wait_until,
    )  # fmt: skip


def _planner(tmp_path: Path, kind: str) -> tuple[JobStore, Planner, Job, list[Evaluation]]:
    """A planner over a store holding one pending job of ``kind``, and the evaluations it
    starts."""
    store = JobStore(tmp_path / "jobs.db")
    started: list[Evaluation] = []
    planner = Planner(
        store=store,
        transport=RecordingCompute(),
        enqueue=started.append,
        new_failure_eval=lambda job, by: _evaluation(job),
    )
    job = Job.from_dict({"Type": kind, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]})
    job.id, job.state, job.revision, job.create_time = "j-1", JobStateType.PENDING, 1, now_ns()
    with store.transaction():
        store.create_job(job)
    return store, planner, job, started


def test_a_later_timer_for_a_job_already_waiting_is_not_started(tmp_path: Path) -> None:
    store, planner, job, started = _planner(tmp_path, "batch")

    def apply(*waits: int) -> list[int]:
        before = len(started)
        planner.apply(
            Plan(job, _evaluation(job), new_evaluations=[_evaluation(job, w) for w in waits])
        )
        return [ev.wait_until for ev in started[before:]]

    now = now_ns()
    assert apply(now + 10 * S) == [now + 10 * S]
    assert apply(now + 20 * S) == []  # the 10 s one looks at the job sooner
    assert apply(now + 5 * S) == [now + 5 * S]  # sooner (a deadline): kept
    assert apply(0) == [0]  # immediate evaluations are never held back
    pending = {ev.wait_until for ev in store.pending_evaluations()}
    assert now + 20 * S not in pending and {now + 5 * S, now + 10 * S} <= pending
    # Once the job ends, what was remembered for it is forgotten.
    planner.apply(Plan(job, _evaluation(job), new_job_state=JobStateType.FAILED))
    assert apply(now + 20 * S) == [now + 20 * S]
    store.close()


def test_a_look_that_runs_a_moment_early_keeps_its_successor(tmp_path: Path) -> None:
    """The evaluation due at the remembered look is that look: run a moment before its due
    time (an event loop's timers may fire a millisecond early), it must not take itself for
    a look still to come and drop the next one, or nothing looks at the job again."""
    store, planner, job, started = _planner(tmp_path, "service")
    now = now_ns()
    first = _evaluation(job, now + S // 100)  # due in 10 ms
    planner.apply(Plan(job, _evaluation(job), new_evaluations=[first]))
    assert started == [first]
    # That look runs a moment before its due time, and asks for the next one a second on.
    successor = _evaluation(job, now + S)
    planner.apply(Plan(job, first, new_evaluations=[successor]))
    assert started == [first, successor]
    store.close()
