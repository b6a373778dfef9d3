"""A run its compute node interrupted as it shut down (an operator stopping or restarting it)
costs the job no attempt: the job is placed again at once, without a backoff, and the node
may take it again once back. A run lost in a crash still counts: the job may have caused it."""

from __future__ import annotations

from dataclasses import replace

from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    JobStateType,
)
from bacalhau.orchestrator import SchedulerSettings, schedule
from bacalhau.orchestrator._attempts import is_attempt
from bacalhau.orchestrator._ranking import SHUT_DOWN, rank_nodes
from tests.orchestrator.test_scheduler import NOW, ev, execution, job, node

E = ExecutionStateType
D = ExecutionDesiredStateType
S = 1_000_000_000
ONE_ATTEMPT = SchedulerSettings(max_attempts=1, max_attempts_per_node=1, retry_delay=30.0)


def interrupted(eid: str, nid: str, *, shutdown: bool) -> Execution:
    flags = ("NodeShutdown",) if shutdown else ()
    ex = execution(eid, nid, E.FAILED, D.STOPPED, "node shut down while the execution was running")
    details = Failure("ExecutionInterrupted", True, flags=flags).details()
    return replace(ex, modify_time=NOW, compute_details=details)


def test_a_run_interrupted_by_a_shutdown_is_no_attempt_and_is_replaced_at_once() -> None:
    history = [interrupted("e1", "a", shutdown=True)]
    assert not is_attempt(history[0])
    plan = schedule(job(), history, [node("a"), node("b")], ev(), now=NOW + S, settings=ONE_ATTEMPT)
    assert plan.new_job_state != JobStateType.FAILED, plan.job_message
    assert [e.node_id for e in plan.new_executions] == ["b"]
    assert not plan.new_evaluations  # placed now, not after the 30 s retry delay


def test_the_node_that_shut_down_may_take_the_job_again_once_back() -> None:
    history = [interrupted("e1", "a", shutdown=True)]
    # Asked while it stops, it would interrupt the run again at once: not before it is back.
    [r] = rank_nodes(job(), [node("a")], history, now=NOW + S, attempts_per_node=1)
    assert r.obstacle is SHUT_DOWN, r.reason
    back = replace(node("a"), back_since_ns=NOW + S)
    [r] = rank_nodes(job(), [back], history, now=NOW + 2 * S, attempts_per_node=1)
    assert r.suitable, r.reason
    # A failure of the job's own on it does use up its one attempt there.
    crashed = [interrupted("e1", "a", shutdown=False)]
    [r] = rank_nodes(job(), [node("a")], crashed, now=NOW + S, attempts_per_node=1)
    assert not r.suitable


def test_a_run_lost_in_a_crash_still_counts() -> None:
    history = [interrupted("e1", "a", shutdown=False)]
    assert is_attempt(history[0])
    plan = schedule(job(), history, [node("a"), node("b")], ev(), now=NOW + S, settings=ONE_ATTEMPT)
    assert plan.new_job_state == JobStateType.FAILED
    assert "retried too many times" in plan.job_message


def test_a_daemon_is_not_placed_again_on_a_node_that_is_shutting_down() -> None:
    # A hot loop otherwise: no backoff (no attempt), asked at once, interrupted at once.
    daemon = replace(job(), type="daemon")
    history = [interrupted("e1", "a", shutdown=True)]
    plan = schedule(daemon, history, [node("a"), node("b")], ev(), now=NOW + S)
    assert [e.node_id for e in plan.new_executions] == ["b"]
