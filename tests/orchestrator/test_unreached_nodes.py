"""An ask a node never got (it could not be reached: it died and gossip has not said so yet,
or a partition) is not an attempt at the job: the job waits and asks again after a pause,
instead of using up its retries in seconds. And a node that completed one partition of a
batch job may run another one whose node was lost."""

from __future__ import annotations

import random
from dataclasses import replace

from bacalhau.models import (
    Connection,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobStateType,
    LivenessState,
)
from bacalhau.orchestrator import SchedulerSettings, schedule
from bacalhau.orchestrator._attempts import UNREACHED
from bacalhau.orchestrator._ranking import UNREACHABLE, rank_nodes
from bacalhau.orchestrator._retries import NODE_LOST
from tests.orchestrator.test_scheduler import NOW, ev, execution, job, node

E = ExecutionStateType
D = ExecutionDesiredStateType
S = 1_000_000_000


def unreached(eid: str, nid: str, at: int) -> Execution:
    ex = execution(eid, nid, E.FAILED, D.STOPPED, f"could not reach node {nid}: refused")
    return replace(ex, modify_time=at, compute_details={"Retryable": "true", UNREACHED: "true"})


def test_asks_that_never_arrived_use_no_retry_and_the_job_waits() -> None:
    """Three nodes killed at once: every ask fails before gossip says they are dead."""
    failed = [unreached(f"e{i}", n, NOW) for i, n in enumerate("abc")]
    nodes = [node("a"), node("b"), node("c")]
    plan = schedule(job(), failed, nodes, ev(), now=NOW + S)
    assert plan.new_job_state == JobStateType.QUEUED, plan.job_message
    assert plan.job_message.startswith(
        "waiting for a node: 3 nodes could not be reached moments ago"
    )
    assert plan.new_executions == []
    assert plan.new_evaluations  # it looks again
    # The pause over (2 s after the failed ask), the nodes are asked again.
    plan = schedule(job(), failed, nodes, ev(), now=NOW + 2 * S)
    assert len(plan.new_executions) == 1 and plan.new_job_state != JobStateType.FAILED


def test_the_pause_grows_and_a_node_unreachable_for_a_minute_is_given_up() -> None:
    history = [unreached("e1", "a", NOW), unreached("e2", "a", NOW + 2 * S)]
    [r] = rank_nodes(job(), [node("a")], history, now=NOW + 5 * S)
    assert r.obstacle == UNREACHABLE and r.reason.endswith("(asked again in 1s)")
    plan = schedule(job(), history, [node("a")], ev(), now=NOW + 61 * S)
    assert plan.new_job_state == JobStateType.FAILED
    assert "could not be reached for 61s" in plan.job_message


def test_a_node_seen_back_since_its_failed_asks_is_asked_at_once() -> None:
    """Restarted (or back from the dead) after the asks failed: no pause, no giving up."""
    history = [unreached("e1", "a", NOW), unreached("e2", "a", NOW + 2 * S)]
    back = replace(node("a"), back_since_ns=NOW + 3 * S)
    [r] = rank_nodes(job(), [back], history, now=NOW + 4 * S)
    assert r.suitable, r.reason
    # An ask that failed after it came back counts again.
    later = [*history, unreached("e3", "a", NOW + 4 * S)]
    [r] = rank_nodes(job(), [back], later, now=NOW + 5 * S)
    assert r.obstacle == UNREACHABLE and r.reason.endswith("(asked again in 1s)")
    # Giving up counts from the first ask that failed since it came back.
    plan = schedule(job(), history, [back], ev(), now=NOW + 70 * S)
    assert len(plan.new_executions) == 1, plan.job_message


def test_a_node_that_completed_a_partition_takes_over_a_lost_one() -> None:
    done_a = execution("e0", "a", E.COMPLETED, D.RUNNING)
    done_b = replace(execution("e1", "b", E.COMPLETED, D.RUNNING), partition_index=1)
    lost_c = replace(
        execution("e2", "c", E.FAILED, D.STOPPED, "node lost"),
        partition_index=2,
        compute_details={NODE_LOST: "true"},
    )
    c = node("c")
    c.connection = Connection.DISCONNECTED
    plan = schedule(
        job(count=3), [done_a, done_b, lost_c], [node("a"), node("b"), c], ev(), now=NOW,
        rng=random.Random(1),
    )  # fmt: skip
    assert [(e.partition_index, e.node_id in "ab") for e in plan.new_executions] == [(2, True)]


def test_a_node_that_left_moments_ago_is_waited_for_like_a_lost_one() -> None:
    """Compute nodes restarted gracefully (an upgrade): jobs submitted meanwhile wait."""
    gone = node("a")
    gone.connection = Connection.DISCONNECTED
    gone.liveness = LivenessState.LEFT
    gone.last_seen_ns = NOW - 5 * S
    settings = SchedulerSettings(lost_node_wait=30)
    plan = schedule(job(), [], [gone], ev(), now=NOW, settings=settings)
    assert plan.new_job_state == JobStateType.QUEUED
    assert "is disconnected (left 5.0s ago; jobs wait up to 30s" in plan.job_message
    plan = schedule(job(), [], [gone], ev(), now=NOW + 30 * S, settings=settings)
    assert plan.new_job_state == JobStateType.FAILED


def test_each_partition_has_its_own_attempts() -> None:
    """Two partitions failing once each, then one failing again: 3 failures, but no
    partition has used its 3 attempts, so the job goes on."""

    def failed(eid: str, nid: str, part: int) -> Execution:
        return replace(execution(eid, nid, E.FAILED, D.STOPPED, "boom"), partition_index=part)

    nodes = [node(n) for n in "abcdef"]
    history = [failed("e1", "a", 0), failed("e2", "b", 1), failed("e3", "c", 0)]
    plan = schedule(job(count=2), history, nodes, ev(), now=NOW + 3600 * S)
    assert plan.new_job_state != JobStateType.FAILED, plan.job_message
    assert sorted(e.partition_index for e in plan.new_executions) == [0, 1]
    history.append(failed("e4", "d", 0))
    plan = schedule(job(count=2), history, nodes, ev(), now=NOW + 3600 * S)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_message.startswith(
        "Job failed because partition 0 of the job has been retried too many times "
        "(3 failed executions of 3 allowed); last error: execution e"
    )


def test_a_node_declared_dead_keeps_its_work_through_a_short_stall() -> None:
    """Gossip declares a silent node dead in a second or two, which a stalled process also
    causes: its running execution is failed only once it has been silent for the grace."""
    running = execution("e1", "a", E.RUNNING, D.RUNNING)
    stalled = node("a")
    stalled.connection = Connection.DISCONNECTED
    stalled.liveness = LivenessState.DEAD
    stalled.last_seen_ns = NOW - 2 * S
    settings = SchedulerSettings(lost_execution_grace=5)
    nodes = [stalled, node("b")]
    plan = schedule(job(), [running], nodes, ev(), now=NOW, settings=settings)
    assert plan.changes == [] and plan.new_executions == []
    assert [e.wait_until > NOW + 3 * S for e in plan.new_evaluations] == [True]
    plan = schedule(job(), [running], nodes, ev(), now=NOW + 3 * S + S // 10, settings=settings)
    [lost] = plan.changes
    assert lost.compute_state == E.FAILED and "silent for 5.1s" in lost.compute_message
    assert [e.node_id for e in plan.new_executions] == ["b"]
    # A node that left said so: its work moves at once.
    stalled.liveness = LivenessState.LEFT
    plan = schedule(job(), [running], nodes, ev(), now=NOW, settings=settings)
    assert [c.compute_state for c in plan.changes] == [E.FAILED]
