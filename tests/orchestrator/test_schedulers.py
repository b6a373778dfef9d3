"""Each job type's scheduler as a pure function: partitions, daemons, services."""

from __future__ import annotations

from dataclasses import replace

from bacalhau.models import (
    NODE_SHUTDOWN,
    Connection,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeState,
)
from bacalhau.orchestrator import SchedulerSettings, schedule
from bacalhau.orchestrator.schedulers import SCHEDULERS
from tests.orchestrator.test_scheduler import NOW, ev, job, node

D = ExecutionDesiredStateType
E = ExecutionStateType
SECOND = 1_000_000_000


def typed(job_type: str, count: int = 1) -> Job:
    j = job(count=count)
    j.type = job_type
    return j


def ex(
    eid: str, nid: str, state: E, desired: D = D.RUNNING, *, part: int = 0, t: int = NOW
) -> Execution:
    return Execution(
        id=eid, job_id="j-1", node_id=nid, compute_state=state, desired_state=desired,
        partition_index=part, create_time=t, modify_time=t,
    )  # fmt: skip


def full(nid: str) -> NodeState:
    """A node with every CPU in use, and its queue (over-subscription) taken as well."""
    n = node(nid)
    assert n.info.compute is not None
    n.info.compute.available_capacity = replace(n.info.compute.max_capacity, cpu=0.0)
    n.info.compute.queue_capacity = replace(n.info.compute.max_capacity, cpu=2.0)
    return n


def test_every_job_type_has_a_scheduler() -> None:
    assert set(SCHEDULERS) == {"batch", "ops", "daemon", "service"}


# -- batch: partitions --------------------------------------------------------------------


def test_batch_count_is_partitions_each_placed_once() -> None:
    plan = schedule(typed("batch", 3), [], [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert sorted(e.partition_index for e in plan.new_executions) == [0, 1, 2]


def test_a_failed_partition_is_retried_alone() -> None:
    executions = [
        ex("e0", "a", E.COMPLETED, part=0),
        ex("e1", "b", E.FAILED, D.STOPPED, part=1),
        ex("e2", "c", E.RUNNING, part=2),
    ]
    settings = SchedulerSettings(retry_delay=0)
    nodes = [node("a"), node("b"), node("c"), node("d")]
    plan = schedule(typed("batch", 3), executions, nodes, ev(), now=NOW, settings=settings)
    assert [e.partition_index for e in plan.new_executions] == [1]


def test_batch_completes_when_every_partition_completed_once() -> None:
    executions = [ex(f"e{i}", n, E.COMPLETED, part=i) for i, n in enumerate("abc")]
    plan = schedule(typed("batch", 3), executions, [node("a")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.COMPLETED


def test_two_completions_of_one_partition_do_not_complete_two_partitions() -> None:
    executions = [ex("e0", "a", E.COMPLETED, part=0), ex("e1", "b", E.COMPLETED, part=0)]
    plan = schedule(typed("batch", 2), executions, [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert plan.new_job_state != JobStateType.COMPLETED
    assert [e.partition_index for e in plan.new_executions] == [1]


def test_only_one_bid_per_partition_is_accepted() -> None:
    executions = [
        ex("e0", "a", E.ASK_FOR_BID_ACCEPTED, D.PENDING, part=0),
        ex("e1", "b", E.ASK_FOR_BID_ACCEPTED, D.PENDING, part=0, t=NOW + 1),
    ]
    plan = schedule(typed("batch", 1), executions, [node("a"), node("b")], ev(), now=NOW)
    by_id = {c.execution_id: c.desired_state for c in plan.changes}
    assert by_id == {"e0": D.RUNNING, "e1": D.STOPPED}


# -- daemon ----------------------------------------------------------------------------------


def test_daemon_runs_on_every_matching_node_pre_approved() -> None:
    nodes = [node("a"), node("b"), node("c", ["wasm"])]
    plan = schedule(typed("daemon"), [], nodes, ev(), now=NOW)
    assert sorted(e.node_id for e in plan.new_executions) == ["a", "b"]
    assert all(e.desired_state == D.RUNNING for e in plan.new_executions)
    assert plan.new_job_state == JobStateType.RUNNING


def test_daemon_adds_a_node_that_joined_later() -> None:
    running = replace(typed("daemon"), state=JobStateType.RUNNING)
    executions = [ex("e1", "a", E.RUNNING), ex("e2", "b", E.RUNNING)]
    plan = schedule(running, executions, [node("a"), node("b"), node("new")], ev(), now=NOW)
    assert [e.node_id for e in plan.new_executions] == ["new"]
    assert not plan.changes


def test_daemon_restarts_an_ended_execution_on_its_node_after_a_backoff() -> None:
    running = replace(typed("daemon"), state=JobStateType.RUNNING)
    executions = [ex("e1", "a", E.COMPLETED, D.STOPPED)]
    settings = SchedulerSettings(retry_delay=2.0)
    soon = schedule(running, executions, [node("a")], ev(), now=NOW + SECOND, settings=settings)
    assert not soon.new_executions
    assert [e.wait_until for e in soon.new_evaluations] == [NOW + 2 * SECOND]
    later = schedule(
        running, executions, [node("a")], ev(), now=NOW + 3 * SECOND, settings=settings
    )
    assert [e.node_id for e in later.new_executions] == ["a"]


def test_daemon_with_no_matching_node_waits_instead_of_failing() -> None:
    plan = schedule(typed("daemon"), [], [node("a", ["wasm"])], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED
    assert not plan.new_executions


def test_daemon_does_not_ask_a_node_that_refused_it_again() -> None:
    running = replace(typed("daemon"), state=JobStateType.RUNNING)
    executions = [ex("e1", "a", E.ASK_FOR_BID_REJECTED, D.STOPPED)]
    plan = schedule(running, executions, [node("a")], ev(), now=NOW + 60 * SECOND)
    assert not plan.new_executions


# -- service ---------------------------------------------------------------------------------


def test_service_places_count_replicas_through_bids() -> None:
    plan = schedule(typed("service", 2), [], [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert sorted(e.partition_index for e in plan.new_executions) == [0, 1]
    assert all(e.desired_state == D.PENDING for e in plan.new_executions)


def test_service_restarts_a_replica_that_exited_after_a_backoff() -> None:
    running = replace(typed("service", 2), state=JobStateType.RUNNING)
    executions = [ex("e0", "a", E.RUNNING, part=0), ex("e1", "b", E.COMPLETED, D.STOPPED, part=1)]
    nodes = [node("a"), node("b")]
    settings = SchedulerSettings(retry_delay=1.0)
    soon = schedule(running, executions, nodes, ev(), now=NOW, settings=settings)
    assert not soon.new_executions and soon.new_evaluations
    plan = schedule(running, executions, nodes, ev(), now=NOW + 2 * SECOND, settings=settings)
    assert [(e.node_id, e.partition_index) for e in plan.new_executions] == [("b", 1)]
    assert plan.new_job_state is None  # a service never completes by itself


def test_service_replica_moves_at_once_when_its_node_is_lost() -> None:
    running = replace(typed("service", 1), state=JobStateType.RUNNING)
    lost = replace(node("a"), connection=Connection.DISCONNECTED)
    nodes: list[NodeState] = [lost, node("b")]
    plan = schedule(running, [ex("e0", "a", E.RUNNING)], nodes, ev(), now=NOW + SECOND)
    assert [c.compute_state for c in plan.changes] == [E.FAILED]
    assert [(e.node_id, e.partition_index) for e in plan.new_executions] == [("b", 0)]


def test_service_keeps_restarting_past_the_batch_attempt_limit() -> None:
    running = replace(typed("service", 1), state=JobStateType.RUNNING)
    executions = [ex(f"e{i}", "a", E.FAILED, D.STOPPED) for i in range(10)]
    settings = SchedulerSettings(retry_delay=0.0)
    plan = schedule(running, executions, [node("a")], ev(), now=NOW, settings=settings)
    assert plan.new_job_state is None
    assert len(plan.new_executions) == 1


def test_a_service_short_of_a_replica_says_why_and_stops_saying_it_once_placed() -> None:
    # One replica per node: with the third node gone, replica 2 has nowhere to go.
    running = replace(typed("service", 3), state=JobStateType.RUNNING)
    live = [ex("e0", "a", E.RUNNING, part=0), ex("e1", "b", E.RUNNING, part=1)]
    plan = schedule(running, live, [node("a"), node("b")], ev(), now=NOW + SECOND)
    assert not plan.new_executions
    assert plan.new_job_state == JobStateType.RUNNING
    assert plan.job_message == (
        "1 of 3 replicas waiting for a node: 2 nodes already run one of its executions"
    )
    assert plan.job_event is not None and plan.job_event.message.startswith("Replica waiting: ")
    # Said once: the same reason again records nothing.
    said = replace(running, state_message=plan.job_message)
    again = schedule(said, live, [node("a"), node("b")], ev(), now=NOW + 2 * SECOND)
    assert again.job_event is None
    # A node joins: the replica is placed there, and the reason is cleared.
    placed = [*live, ex("e2", "c", E.RUNNING, part=2)]
    nodes = [node("a"), node("b"), node("c")]
    done = schedule(said, placed, nodes, ev(), now=NOW + 3 * SECOND)
    assert done.job_message == ""
    assert done.job_event is not None and done.job_event.message == "All 3 replicas placed"


def test_a_service_waiting_out_a_restart_backoff_says_so_once() -> None:
    """Its only replica failed five times: while it waits to restart, the running job says
    so (the same words at every pass of the wait), and clears it once the replica runs."""
    running = replace(typed("service", 1), state=JobStateType.RUNNING)
    failed = [ex(f"e{i}", "a", E.FAILED, D.STOPPED, t=NOW + i * SECOND) for i in range(5)]
    settings = SchedulerSettings(retry_delay=1.0, retry_max_delay=30.0)
    plan = schedule(running, failed, [node("a")], ev(), now=NOW + 5 * SECOND, settings=settings)
    assert not plan.new_executions and plan.new_evaluations
    assert plan.new_job_state == JobStateType.RUNNING
    assert plan.job_message == (
        "1 of 1 replicas restarting after a backoff of 16s, following 5 failures"
    )
    assert plan.job_event is not None and plan.job_event.message.startswith("Replica restarting")
    said = replace(running, state_message=plan.job_message)
    later = schedule(said, failed, [node("a")], ev(), now=NOW + 9 * SECOND, settings=settings)
    assert later.job_event is None  # the same wait: nothing new to say
    # Restarted and running: the message is cleared.
    back = [*failed, ex("e5", "a", E.RUNNING, t=NOW + 30 * SECOND)]
    done = schedule(said, back, [node("a")], ev(), now=NOW + 31 * SECOND, settings=settings)
    assert done.job_message == ""
    # A run its node interrupted as it shut down is no failure of the job: not counted,
    # and not what the backoff is measured from.
    stopped = ex("e5", "a", E.FAILED, D.STOPPED, t=NOW + 7 * SECOND)
    stopped.compute_details = {NODE_SHUTDOWN: "true"}
    plan = schedule(
        running, [*failed, stopped], [node("a")], ev(), now=NOW + 8 * SECOND, settings=settings
    )
    assert plan.job_message == (
        "1 of 1 replicas restarting after a backoff of 16s, following 5 failures"
    )


def test_a_new_service_waits_for_nodes_that_are_only_full_and_fails_on_ones_that_never_fit() -> (
    None
):
    service = typed("service", 1)

    plan = schedule(service, [], [full("a"), full("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED, plan.job_message
    assert "2 nodes are full" in plan.job_message
    assert "is full: needs CPU 0.1, 0 left" in plan.job_message, plan.job_message
    assert plan.new_evaluations  # and it looks again
    # Nodes that can never run it: told at once, as before.
    plan = schedule(service, [], [node("a", ["wasm"])], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED


def test_a_service_no_node_ever_took_fails_when_its_queue_timeout_passes() -> None:
    """As Bacalhau fails batch and service jobs past their QueueTimeout: a service whose
    constraint no node meets waits its QueueTimeout, then fails saying so. One that has run
    and lost its node goes on waiting."""
    service = typed("service", 1)
    service.task.timeouts.queue_timeout = 10
    service.create_time = NOW
    wrong_engine = [node("a", ["wasm"])]
    waiting = schedule(service, [], wrong_engine, ev(), now=NOW + 4 * SECOND)
    assert waiting.new_job_state == JobStateType.QUEUED, waiting.job_message
    # It looks again when the QueueTimeout passes, not a backoff later.
    assert min(e.wait_until for e in waiting.new_evaluations) <= NOW + 11 * SECOND
    failed = schedule(service, [], wrong_engine, ev(), now=NOW + 10 * SECOND + 1)
    assert failed.new_job_state == JobStateType.FAILED
    assert "the job waited its QueueTimeout of 10s for a node" in failed.job_message
    ran = [ex("e-1", "gone", E.FAILED, D.STOPPED, t=NOW + SECOND)]
    still = schedule(service, ran, wrong_engine, ev(), now=NOW + 30 * SECOND)
    assert still.new_job_state != JobStateType.FAILED, still.job_message


def test_an_ops_job_waits_for_nodes_only_full_for_now_and_fails_on_ones_that_never_fit() -> None:
    """As a batch job: busy nodes free room by themselves (it failed under load before)."""
    ops = typed("ops", 1)

    plan = schedule(ops, [], [full("a"), full("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED, plan.job_message
    assert plan.new_evaluations and not plan.new_executions
    plan = schedule(ops, [], [node("a", ["wasm"])], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
