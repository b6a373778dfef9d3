"""The batch/ops schedulers as pure functions: plans are recorded, nothing is mocked."""

from __future__ import annotations

import random

from bacalhau.models import (
    NOT_IN_CLUSTER,
    ComputeNodeInfo,
    Connection,
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    normalise_job,
    validate_job,
)
from bacalhau.orchestrator import SchedulerSettings, schedule

D = ExecutionDesiredStateType
E = ExecutionStateType
NOW = 1_700_000_000_000_000_000


def node(nid: str, engines: list[str] = ["docker", "wasm"], cpu: float = 4.0) -> NodeState:  # noqa: B006
    cap = Resources(cpu=cpu, memory=8 * 10**9, disk=10**11)
    return NodeState(
        info=NodeInfo(
            node_id=nid,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=engines,
                publishers=["local", "noop"],
                max_capacity=cap,
                available_capacity=cap,
                max_job_requirements=cap,
            ),
        )
    )


#: The smallest WebAssembly module (its header) as an inline data: URL.
WASM_HEADER = "data:application/wasm;base64,AGFzbQEAAAA="


def job(count: int = 1, engine: str = "docker", **task: object) -> Job:
    params = (
        {"Image": "x"}
        if engine == "docker"
        else {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": WASM_HEADER}}}}
    )
    t: dict[str, object] = {"Name": "main", "Engine": {"Type": engine, "Params": params}}
    t.update(task)
    j = Job.from_dict({"Type": "batch", "Count": count, "Tasks": [t]})
    normalise_job(j)
    validate_job(j)
    j.id = "j-1"
    j.state = JobStateType.PENDING
    j.create_time = NOW
    return j


def ev() -> Evaluation:
    return Evaluation(id="ev", job_id="j-1", namespace="default", type="batch", triggered_by="x")


def execution(eid: str, nid: str, state: E, desired: D = D.PENDING, msg: str = "") -> Execution:
    return Execution(
        id=eid, job_id="j-1", node_id=nid, compute_state=state, desired_state=desired,
        compute_message=msg, create_time=NOW,
    )  # fmt: skip


def test_count_places_on_distinct_nodes() -> None:
    plan = schedule(job(count=2), [], [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert len(plan.new_executions) == 2
    assert len({e.node_id for e in plan.new_executions}) == 2
    # Nothing to ask first: pre-approved, one round.
    assert all(e.desired_state == D.RUNNING for e in plan.new_executions)
    assert plan.new_job_state is None  # running once a node takes it, not before
    two_rounds = SchedulerSettings(pre_approve=False)
    plan = schedule(job(count=2), [], [node("a"), node("b")], ev(), now=NOW, settings=two_rounds)
    assert all(e.desired_state == D.PENDING for e in plan.new_executions)


def test_no_node_with_engine_fails_and_says_why() -> None:
    plan = schedule(job(engine="wasm"), [], [node("a", ["docker"])], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "not enough nodes" in plan.job_message
    assert "node a does not support wasm: its engines are docker" in plan.job_message


def test_no_nodes_at_all() -> None:
    plan = schedule(job(), [], [], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "no compute node has joined" in plan.job_message


def test_queue_timeout_queues_instead_of_failing() -> None:
    plan = schedule(job(Timeouts={"QueueTimeout": 60}), [], [], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED
    assert plan.new_evaluations and plan.new_evaluations[0].wait_until > NOW


def test_accepted_bid_is_approved_and_job_runs() -> None:
    ex = execution("e1", "a", E.ASK_FOR_BID_ACCEPTED)
    plan = schedule(job(), [ex], [node("a")], ev(), now=NOW)
    assert [(c.execution_id, c.desired_state) for c in plan.changes] == [("e1", D.RUNNING)]
    assert plan.new_job_state == JobStateType.RUNNING
    assert not plan.new_executions


def test_surplus_bids_are_rejected() -> None:
    exs = [
        execution("e1", "a", E.ASK_FOR_BID_ACCEPTED),
        execution("e2", "b", E.ASK_FOR_BID_ACCEPTED),
    ]
    exs[1].create_time += 1
    plan = schedule(job(count=1), exs, [node("a"), node("b")], ev(), now=NOW)
    changes = {c.execution_id: c.desired_state for c in plan.changes}
    assert changes == {"e1": D.RUNNING, "e2": D.STOPPED}


def test_completion() -> None:
    ex = execution("e1", "a", E.COMPLETED, D.STOPPED)
    plan = schedule(job(), [ex], [node("a")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.COMPLETED


def test_rejected_bid_moves_to_another_node() -> None:
    ex = execution("e1", "a", E.ASK_FOR_BID_REJECTED, D.STOPPED, "busy")
    plan = schedule(job(), [ex], [node("a"), node("b")], ev(), now=NOW)
    assert [e.node_id for e in plan.new_executions] == ["b"]


def test_failure_is_retried_then_reported() -> None:
    ex = execution("e1", "a", E.FAILED, D.STOPPED, "image missing")
    ex.compute_details = {"Retryable": "false"}
    plan = schedule(job(), [ex], [node("a")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "image missing" in plan.job_message


def test_an_input_no_member_of_the_cluster_has_fails_the_job_without_another_node() -> None:
    msg = "input ipfs://bafy...: not found in the cluster after 60 s"
    looked = execution("e1", "a", E.FAILED, D.STOPPED, msg)
    looked.compute_details = Failure("BlockNotFound", False, flags=(NOT_IN_CLUSTER,)).details()
    plan = schedule(job(), [looked], [node("a"), node("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED, plan.job_message
    assert not plan.new_executions
    assert "input is in no node of the cluster" in plan.job_message and msg in plan.job_message
    assert plan.job_event is not None
    assert plan.job_event.details["ErrorCode"] == "BlockNotFound"
    # A member out of reach may hold it: then another node tries.
    looked.compute_details = Failure("BlockNotFound", False).details()
    plan = schedule(job(), [looked], [node("a"), node("b")], ev(), now=NOW)
    assert [e.node_id for e in plan.new_executions] == ["b"]


def test_retries_are_bounded() -> None:
    exs = [execution(f"e{i}", n, E.FAILED, D.STOPPED, "boom") for i, n in enumerate("abc")]
    plan = schedule(job(), exs, [node("a"), node("b"), node("c"), node("d")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "retried too many times" in plan.job_message


def test_lost_node_fails_its_execution_and_reschedules() -> None:
    ex = execution("e1", "a", E.BID_ACCEPTED, D.RUNNING)
    a = node("a")
    a.connection = Connection.DISCONNECTED
    plan = schedule(job(), [ex], [a, node("b")], ev(), now=NOW, rng=random.Random(1))
    lost = [c for c in plan.changes if c.execution_id == "e1"]
    assert lost and lost[0].compute_state == E.FAILED and "disconnected" in lost[0].compute_message
    assert [e.node_id for e in plan.new_executions] == ["b"]


def test_stopped_job_stops_everything() -> None:
    j = job()
    j.state = JobStateType.STOPPED
    exs = [
        execution("e1", "a", E.BID_ACCEPTED, D.RUNNING),
        execution("e2", "b", E.COMPLETED, D.STOPPED),
    ]
    plan = schedule(j, exs, [node("a"), node("b")], ev(), now=NOW)
    assert [(c.execution_id, c.desired_state) for c in plan.changes] == [("e1", D.STOPPED)]


def test_resources_too_big_for_every_node() -> None:
    plan = schedule(job(Resources={"CPU": "64"}), [], [node("a", cpu=2)], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "CPU 64 > 2" in plan.job_message


def test_ops_runs_everywhere_pre_approved() -> None:
    j = job()
    j.type = "ops"
    plan = schedule(j, [], [node("a"), node("b", ["wasm"])], ev(), now=NOW)
    assert [e.node_id for e in plan.new_executions] == ["a"]
    assert plan.new_executions[0].desired_state == D.RUNNING


def test_max_attempts_setting() -> None:
    exs = [execution("e0", "a", E.FAILED, D.STOPPED, "boom")]
    plan = schedule(
        job(),
        exs,
        [node("a"), node("b")],
        ev(),
        now=NOW,
        settings=SchedulerSettings(max_attempts=1),
    )
    assert plan.new_job_state == JobStateType.FAILED


# -- the grace after a requester start: unknown capacity waits -------------------------------

#: The end of a 30 s grace that began at NOW (the requester just started).
SETTLING = NOW + 30 * 10**9


def test_no_node_yet_after_a_start_waits_for_nodes_instead_of_failing() -> None:
    plan = schedule(job(), [], [], ev(), now=NOW, settling_until=SETTLING)
    assert plan.new_job_state == JobStateType.QUEUED
    assert plan.job_event is not None
    assert "waiting for compute nodes to join" in plan.job_event.message
    assert not plan.new_executions
    # Looked at again once the grace is over (a joining node triggers it sooner).
    [again] = plan.new_evaluations
    assert SETTLING <= again.wait_until <= SETTLING + 10**9


def test_already_waiting_job_is_not_queued_twice() -> None:
    j = job()
    j.state = JobStateType.QUEUED
    plan = schedule(j, [], [], ev(), now=NOW + 10**9, settling_until=SETTLING)
    assert plan.new_job_state is None and plan.job_event is None
    assert len(plan.new_evaluations) == 1


def test_a_node_joining_within_the_grace_gets_the_waiting_job() -> None:
    j = job()
    j.state = JobStateType.QUEUED
    plan = schedule(j, [], [node("a")], ev(), now=NOW + 10**9, settling_until=SETTLING)
    assert [e.node_id for e in plan.new_executions] == ["a"]
    assert plan.new_job_state is None


def test_after_the_grace_no_node_fails_with_the_usual_message() -> None:
    j = job()
    j.state = JobStateType.QUEUED
    plan = schedule(j, [], [], ev(), now=SETTLING + 10**8, settling_until=SETTLING)
    assert plan.new_job_state == JobStateType.FAILED
    assert "no compute node has joined" in plan.job_message


def test_after_the_grace_queue_timeout_still_says_wait() -> None:
    j = job(Timeouts={"QueueTimeout": 120})
    j.state = JobStateType.QUEUED
    j.state_message = "waiting for a node: no compute node has joined"
    plan = schedule(j, [], [], ev(), now=SETTLING + 10**8, settling_until=SETTLING)
    assert plan.new_job_state is None  # still queued
    # The timer is a safety net (joins re-evaluate at once): bounded by queue_backoff_max.
    [again] = plan.new_evaluations
    assert SETTLING < again.wait_until <= SETTLING + 10**8 + 30 * 10**9


def test_known_nodes_that_cannot_run_the_job_fail_it_even_within_the_grace() -> None:
    # Capacity is known (as many nodes as the job needs have joined): no reason to wait.
    plan = schedule(
        job(engine="wasm"), [], [node("a", ["docker"])], ev(), now=NOW, settling_until=SETTLING
    )
    assert plan.new_job_state == JobStateType.FAILED
    assert "does not support wasm: its engines" in plan.job_message


def test_fewer_nodes_than_count_within_the_grace_places_what_it_can_and_waits() -> None:
    plan = schedule(job(count=2), [], [node("a")], ev(), now=NOW, settling_until=SETTLING)
    assert [e.node_id for e in plan.new_executions] == ["a"]
    assert plan.new_job_state is None
    assert [e.wait_until > SETTLING for e in plan.new_evaluations] == [True]
    after = schedule(job(count=2), [], [node("a")], ev(), now=SETTLING + 10**8)
    assert after.new_job_state == JobStateType.FAILED


def test_execution_on_a_node_not_heard_from_since_the_start_is_not_failed() -> None:
    ex = execution("e1", "a", E.BID_ACCEPTED, D.RUNNING)
    running = job()
    running.state = JobStateType.RUNNING
    plan = schedule(running, [ex], [], ev(), now=NOW, settling_until=SETTLING)
    assert plan.changes == [] and plan.new_executions == [] and plan.new_job_state is None
    assert [e.wait_until > SETTLING for e in plan.new_evaluations] == [True]
    # Once the grace is over, a node still unknown is gone: its execution fails, as before.
    later = schedule(running, [ex], [], ev(), now=SETTLING + 10**8, settling_until=SETTLING)
    [lost] = later.changes
    assert lost.compute_state == E.FAILED and "disappeared" in lost.compute_message


def test_ops_job_waits_for_nodes_within_the_grace() -> None:
    j = job()
    j.type = "ops"
    plan = schedule(j, [], [], ev(), now=NOW, settling_until=SETTLING)
    assert plan.new_job_state == JobStateType.QUEUED and plan.new_evaluations
    later = schedule(j, [], [], ev(), now=SETTLING + 10**8, settling_until=SETTLING)
    assert later.new_job_state == JobStateType.FAILED


def test_a_node_missing_a_constraint_is_told_which_and_its_labels() -> None:
    """With several constraints, the reason names the one the node misses (as Bacalhau's
    "labels ... don't match required selectors ..."), not only that one was missed."""
    from bacalhau.models import parse_selector

    j = job()
    j.constraints = parse_selector("zone=eu,gpu")
    eu, us = node("eu"), node("us")
    eu.info.labels, us.info.labels = {"zone": "eu", "gpu": "a100"}, {"zone": "us", "gpu": "t4"}
    plan = schedule(j, [], [us], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert (
        "does not match the job's constraints: needs zone = eu (its labels: gpu=t4, zone=us)"
        in plan.job_message
    ), plan.job_message
    placed = schedule(j, [], [eu, us], ev(), now=NOW)
    assert [e.node_id for e in placed.new_executions] == ["eu"]
