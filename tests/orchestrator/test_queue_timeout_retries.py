"""A job whose QueueTimeout passed while it waited in a node's run queue: the node fails that
execution (retryably), and the job is placed again only where it can start at once. With no
node that has free room, it fails saying its QueueTimeout passed, not after burning every
attempt on nodes that would queue it (and fail it at once, the deadline being past)."""

from __future__ import annotations

from dataclasses import replace

from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    JobStateType,
    NodeState,
)
from bacalhau.orchestrator import SchedulerSettings, schedule
from tests.orchestrator.test_scheduler import NOW, ev, execution, job, node

E = ExecutionStateType
D = ExecutionDesiredStateType
S = 1_000_000_000
#: No backoff: the retry is planned in the same pass.
NO_DELAY = SchedulerSettings(retry_delay=0.0)


def _timed_out_in_queue(nid: str) -> Execution:
    msg = "the job's QueueTimeout of 10s passed while the execution waited in this node's queue"
    ex = execution("e1", nid, E.FAILED, D.STOPPED, msg)
    return replace(ex, compute_details=Failure("QueueTimeout", True).details(), modify_time=NOW)


def _busy(nid: str, free_cpu: float) -> NodeState:
    """A 4-CPU node with ``free_cpu`` free (room in its queue left, by over-subscription)."""
    n = node(nid)
    assert n.info.compute is not None
    n.info.compute.available_capacity = replace(n.info.compute.max_capacity, cpu=free_cpu)
    return n


def test_after_its_queue_timeout_a_job_goes_only_where_it_can_start_now() -> None:
    waited = job(Timeouts={"QueueTimeout": 10}, Resources={"CPU": "1"})
    waited.state = JobStateType.RUNNING
    later = NOW + 20 * S
    history = [_timed_out_in_queue("a")]
    nodes = [_busy("a", 0.0), _busy("b", 0.0), _busy("c", 2.0)]
    plan = schedule(waited, history, nodes, ev(), now=later, settings=NO_DELAY)
    assert [e.node_id for e in plan.new_executions] == ["c"]

    # Nowhere to start now: it fails on its QueueTimeout, with the nodes' reasons.
    plan = schedule(waited, history, nodes[:2], ev(), now=later, settings=NO_DELAY)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_message.startswith("the job waited its QueueTimeout of 10s for a node")
    assert "full" in plan.job_message


def test_before_its_queue_timeout_queue_room_still_counts() -> None:
    fresh = job(Timeouts={"QueueTimeout": 600}, Resources={"CPU": "1"})
    plan = schedule(fresh, [], [_busy("a", 0.0)], ev(), now=NOW + S)
    # Over-subscription: the node takes it into its queue, to start when room frees.
    assert [e.node_id for e in plan.new_executions] == ["a"]
