"""A batch job whose only suitable node died moments ago waits for it to come back (a
restart, or a false death under load) instead of failing at once; a node that left, or one
lost longer ago than ``lost_node_wait``, fails the job as before."""

from __future__ import annotations

from bacalhau.models import Connection, JobStateType, LivenessState, NodeState, TriggeredBy
from bacalhau.orchestrator import SchedulerSettings, schedule
from tests.orchestrator.test_scheduler import NOW, D, E, ev, execution, job, node

SECOND = 1_000_000_000
WAIT = SchedulerSettings(lost_node_wait=30.0)


def lost(nid: str, seconds_ago: float, liveness: LivenessState = LivenessState.DEAD) -> NodeState:
    n = node(nid)
    n.connection = Connection.DISCONNECTED
    n.liveness = liveness
    n.last_seen_ns = NOW - int(seconds_ago * SECOND)
    return n


def test_a_job_waits_for_its_node_lost_moments_ago() -> None:
    failed = execution("e1", "a", E.FAILED, D.STOPPED, "node a disconnected (silent for 1.2s)")
    plan = schedule(job(), [failed], [lost("a", 2)], ev(), now=NOW, settings=WAIT)
    assert plan.new_job_state != JobStateType.FAILED, plan.job_message
    assert plan.new_executions == []
    [again] = plan.new_evaluations
    assert again.triggered_by == TriggeredBy.JOB_QUEUE and again.wait_until > NOW
    assert plan.new_job_state == JobStateType.QUEUED
    assert "lost moments ago and may come back" in plan.job_message


def test_the_node_back_takes_the_retry() -> None:
    failed = execution("e1", "a", E.FAILED, D.STOPPED, "node a disconnected (silent for 1.2s)")
    plan = schedule(job(), [failed], [node("a")], ev(), now=NOW, settings=WAIT)
    assert [e.node_id for e in plan.new_executions] == ["a"]


def test_a_node_lost_longer_ago_than_the_wait_fails_the_job() -> None:
    plan = schedule(job(), [], [lost("a", 31)], ev(), now=NOW, settings=WAIT)
    assert plan.new_job_state == JobStateType.FAILED
    assert "is disconnected" in plan.job_message


def test_a_node_that_left_is_waited_for_too_as_it_may_be_restarting() -> None:
    plan = schedule(job(), [], [lost("a", 2, LivenessState.LEFT)], ev(), now=NOW, settings=WAIT)
    assert plan.new_job_state == JobStateType.QUEUED
    assert "(left 2.0s ago;" in plan.job_message


def test_without_the_setting_the_job_fails_at_once() -> None:
    plan = schedule(job(), [], [lost("a", 2)], ev(), now=NOW, settings=SchedulerSettings())
    assert plan.new_job_state == JobStateType.FAILED
