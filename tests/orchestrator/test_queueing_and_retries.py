"""Queueing, timeouts and the retry policy as pure scheduler rules: each test builds a job, its
executions and a node view, and reads the plan."""

from __future__ import annotations

from bacalhau.models import (
    ComputeNodeInfo,
    Connection,
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    Membership,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    TriggeredBy,
    normalise_job,
    validate_job,
)
from bacalhau.orchestrator import (
    SchedulerSettings,
    overdue_trigger,
    queued_jobs_for_node,
    retry_policy,
    schedule,
)

D = ExecutionDesiredStateType
E = ExecutionStateType
NOW = 1_700_000_000_000_000_000
S = 1_000_000_000
CAP = Resources(cpu=4.0, memory=8 * 10**9, disk=10**11)


def node(nid: str, engines: tuple[str, ...] = ("docker",), free: float = 4.0) -> NodeState:
    """A compute node with 4 CPUs of which ``free`` are available."""
    return NodeState(
        info=NodeInfo(
            node_id=nid,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=list(engines),
                publishers=["local", "noop"],
                max_capacity=CAP,
                available_capacity=Resources(cpu=free, memory=CAP.memory, disk=CAP.disk),
                max_job_requirements=CAP,
            ),
        )
    )


def job(**fields: object) -> Job:
    task: dict[str, object] = {
        "Name": "main",
        "Engine": {"Type": "docker", "Params": {"Image": "x"}},
        "Resources": {"CPU": "1"},
    }
    task.update(fields.pop("task", {}))  # type: ignore[arg-type]
    j = Job.from_dict({"Type": "batch", "Count": 1, "Tasks": [task], **fields})
    normalise_job(j)
    validate_job(j)
    j.id = "j-1"
    j.state = JobStateType.PENDING
    j.create_time = NOW
    return j


def ev() -> Evaluation:
    return Evaluation(id="ev", job_id="j-1", namespace="default", type="batch", triggered_by="x")


def failed(eid: str, nid: str, at: int, **details: str) -> Execution:
    return Execution(
        id=eid, job_id="j-1", node_id=nid, compute_state=E.FAILED, desired_state=D.STOPPED,
        compute_message="boom", compute_details=dict(details), create_time=at, modify_time=at,
    )  # fmt: skip


def running(eid: str, nid: str, since: int) -> Execution:
    return Execution(
        id=eid, job_id="j-1", node_id=nid, compute_state=E.BID_ACCEPTED, desired_state=D.RUNNING,
        create_time=since, modify_time=since,
    )  # fmt: skip


# -- retry policy ----------------------------------------------------------------------------


def test_the_jobs_reschedule_block_overrides_the_operator_defaults() -> None:
    settings = SchedulerSettings(max_attempts=3, max_attempts_per_node=2, retry_delay=1.0)
    policy = retry_policy(
        job(Reschedule={"Attempts": 5, "AttemptsPerNode": 1, "Delay": "2s", "MaxDelay": "5s"}),
        settings,
    )
    assert (policy.attempts, policy.attempts_per_node) == (5, 1)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    default = retry_policy(job(), settings)
    assert (default.attempts, default.attempts_per_node, default.delay) == (3, 2, 1.0)


def test_attempts_from_the_job_spec_fail_the_job_with_the_last_error_code() -> None:
    exs = [failed("e1", "a", NOW - 10 * S, ErrorCode="ExecutionTimeout")]
    one = job(Reschedule={"Attempts": 1})
    plan = schedule(one, exs, [node("a"), node("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_event is not None
    assert plan.job_event.details["ErrorCode"] == "ExecutionTimeout"
    # The operator's default (3) would have retried it elsewhere.
    retried = schedule(job(), exs, [node("a"), node("b")], ev(), now=NOW)
    assert [e.node_id for e in retried.new_executions] == ["b"]


def test_a_node_that_used_up_its_attempts_is_not_asked_again() -> None:
    exs = [failed("e1", "a", NOW - 10 * S)]
    per_node_1 = job(Reschedule={"AttemptsPerNode": 1, "Attempts": 5})
    plan = schedule(per_node_1, exs, [node("a")], ev(), now=NOW)
    assert not plan.new_executions
    assert plan.new_job_state == JobStateType.FAILED
    assert "node a used up its attempts at this job (1 of 1 failed)" in plan.job_message
    # Two attempts per node (the default): the same node gets a second try.
    again = schedule(job(Reschedule={"Attempts": 5}), exs, [node("a")], ev(), now=NOW)
    assert [e.node_id for e in again.new_executions] == ["a"]


def test_a_job_that_failed_on_every_node_says_to_fix_the_job_not_to_add_nodes() -> None:
    exs = [
        failed("e1", "a", NOW - 20 * S, ErrorCode="ExecutionFailed"),
        failed("e2", "b", NOW - 10 * S, ErrorCode="ImageNotFound", Hint="load the image"),
    ]
    spread = job(Reschedule={"AttemptsPerNode": 1, "Attempts": 5})
    plan = schedule(spread, exs, [node("a"), node("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED and plan.job_event is not None
    # The last failure's own code and hint, not "start a compute node that supports...".
    assert plan.job_event.details["ErrorCode"] == "ImageNotFound"
    assert plan.job_event.details["Hint"] == "load the image"
    assert "node b used up its attempts" in plan.job_message
    without_hint = [failed("e1", "a", NOW - 10 * S, ErrorCode="ExecutionFailed")]
    alone = schedule(spread, without_hint, [node("a")], ev(), now=NOW)
    assert alone.job_event is not None
    assert "fix the job" in alone.job_event.details["Hint"]
    # A node that could still take the job (here: one lacking its engine) is another story:
    # adding or changing nodes may help, so the hint says so.
    mixed = schedule(spread, without_hint, [node("a"), node("w", ("wasm",))], ev(), now=NOW)
    assert mixed.job_event is not None
    assert mixed.job_event.details["ErrorCode"] == "NotEnoughNodes"
    assert "start or configure a compute node" in mixed.job_event.details["Hint"]


def test_a_retry_waits_for_its_backoff_through_a_delayed_evaluation() -> None:
    j = job(Reschedule={"Attempts": 5, "Delay": "2s", "MaxDelay": "30s"})
    j.state = JobStateType.RUNNING
    exs = [failed("e1", "a", NOW - 3 * S), failed("e2", "b", NOW - S)]
    # Two failures: 4 s after the last one, which was 1 s ago.
    plan = schedule(j, exs, [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert not plan.new_executions and plan.new_job_state is None
    [later] = plan.new_evaluations
    assert later.wait_until == NOW + 3 * S
    assert later.triggered_by == TriggeredBy.EXEC_FAILURE
    # When it fires, the retry is placed (on the node that has not failed it).
    done = schedule(j, exs, [node("a"), node("b"), node("c")], ev(), now=later.wait_until)
    assert [e.node_id for e in done.new_executions] == ["c"]


def test_an_execution_lost_with_its_node_is_replaced_at_once() -> None:
    j = job(Reschedule={"Delay": "10s"})
    j.state = JobStateType.RUNNING
    gone = node("a")
    gone.connection = Connection.DISCONNECTED
    plan = schedule(j, [running("e1", "a", NOW - S)], [gone, node("b")], ev(), now=NOW)
    [lost] = plan.changes
    assert lost.compute_state == E.FAILED
    assert [e.node_id for e in plan.new_executions] == ["b"]


# -- queueing --------------------------------------------------------------------------------


def test_a_waiting_job_says_why_counting_nodes_by_reason() -> None:
    nodes = [node("a", ("wasm",)), node("b", ("wasm",)), node("c", free=0.0)]
    nodes[2].info.compute.queue_capacity = Resources(cpu=2.0)  # type: ignore[union-attr]
    plan = schedule(job(task={"Timeouts": {"QueueTimeout": 60}}), [], nodes, ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED
    assert plan.job_event is not None
    assert plan.job_event.message == (
        "Job queued: waiting for a node: 2 nodes lack the docker engine; 1 node is full"
    )
    assert plan.job_message.splitlines()[0] == (
        "waiting for a node: 2 nodes lack the docker engine; 1 node is full"
    )
    assert not plan.new_executions


def test_the_reason_is_recorded_again_only_when_it_changes() -> None:
    j = job(task={"Timeouts": {"QueueTimeout": 60}})
    nodes = [node("a", ("wasm",))]
    first = schedule(j, [], nodes, ev(), now=NOW)
    j.state, j.state_message = JobStateType.QUEUED, first.job_message
    same = schedule(j, [], nodes, ev(), now=NOW + S)
    assert same.new_job_state is None and same.job_event is None
    assert len(same.new_evaluations) == 1  # the safety-net timer stays
    pending = node("b")
    pending.membership = Membership.PENDING
    changed = schedule(j, [], [*nodes, pending], ev(), now=NOW + 2 * S)
    assert changed.new_job_state == JobStateType.QUEUED
    assert changed.job_event is not None
    assert changed.job_event.message == (
        "Job queued: waiting for a node: 1 node is pending; 1 node lacks the docker engine"
    )


def test_full_nodes_make_a_job_wait_even_without_a_queue_timeout() -> None:
    busy = node("a", free=0.0)
    busy.info.compute.queue_capacity = Resources(cpu=2.0)  # type: ignore[union-attr]
    plan = schedule(job(), [], [busy], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.QUEUED and not plan.new_executions
    # A node that cannot ever run it still fails the job at once (no QueueTimeout).
    wrong = schedule(job(), [], [node("b", ("wasm",))], ev(), now=NOW)
    assert wrong.new_job_state == JobStateType.FAILED


def test_the_safety_net_timer_backs_off_and_stops_at_the_queue_timeout() -> None:
    j = job(task={"Timeouts": {"QueueTimeout": 60}})
    j.state = JobStateType.QUEUED
    early = schedule(j, [], [], ev(), now=NOW + S)
    assert early.new_evaluations[0].wait_until == NOW + 2 * S  # queue_backoff: 1 s
    later = schedule(j, [], [], ev(), now=NOW + 50 * S)
    assert later.new_evaluations[0].wait_until == NOW + 60 * S + S // 10  # at the deadline
    expired = schedule(j, [], [], ev(), now=NOW + 60 * S + S // 10)
    assert expired.new_job_state == JobStateType.FAILED
    assert expired.job_message.startswith("the job waited its QueueTimeout of 60s for a node.")
    assert expired.job_event is not None
    assert expired.job_event.details["ErrorCode"] == "NotEnoughNodes"


def test_the_operator_default_queue_timeout_applies_to_jobs_without_one() -> None:
    settings = SchedulerSettings(default_queue_timeout=30)
    plan = schedule(job(), [], [node("a", ("wasm",))], ev(), now=NOW, settings=settings)
    assert plan.new_job_state == JobStateType.QUEUED


def test_queued_jobs_for_a_node_go_by_priority_then_age_within_its_room() -> None:
    jobs = []
    for jid, priority, age, cpu in [
        ("recent", 0, 1, "1"),
        ("earlier", 0, 5, "1"),
        ("urgent", 9, 9, "1"),
        ("huge", 9, 0, "64"),
        ("wasm", 9, 0, "1"),
    ]:
        j = job(Priority=priority, task={"Resources": {"CPU": cpu}})
        if jid == "wasm":
            j.task.engine.type = "wasm"
        j.id, j.create_time, j.state = jid, NOW - age * S, JobStateType.QUEUED
        jobs.append(j)
    # 2 CPUs free: room for 4 one-CPU jobs with 0.5 x 4 CPUs of over-subscription.
    busy = node("a", free=2.0)
    picked = queued_jobs_for_node(jobs, busy, limit=10)
    # Too big and wrong engine are skipped.
    assert [j.id for j in picked] == ["urgent", "earlier", "recent"]
    many = [*jobs, *(job(task={"Resources": {"CPU": "1"}}) for _ in range(5))]
    for i, j in enumerate(many[len(jobs) :]):
        j.id, j.state = f"more-{i}", JobStateType.QUEUED
    assert len(queued_jobs_for_node(many, busy, limit=10)) == 4
    assert [j.id for j in queued_jobs_for_node(jobs, busy, limit=1)] == ["urgent"]
    assert queued_jobs_for_node(jobs, node("w", ("wasm",)), limit=10)[0].id == "wasm"


# -- timeouts --------------------------------------------------------------------------------


def test_an_execution_past_its_timeout_and_grace_is_cancelled_on_its_node_and_failed() -> None:
    j = job(task={"Timeouts": {"ExecutionTimeout": 10}}, Reschedule={"Attempts": 1})
    j.state = JobStateType.RUNNING
    settings = SchedulerSettings(execution_timeout_grace=5)
    ex = running("e1", "a", NOW - 14 * S)
    assert not schedule(j, [ex], [node("a")], ev(), now=NOW, settings=settings).changes
    plan = schedule(j, [ex], [node("a")], ev(), now=NOW + 2 * S, settings=settings)
    [change] = plan.changes
    assert change.compute_state == E.FAILED and change.cancel_on_node
    assert change.compute_details["ErrorCode"] == "ExecutionTimeout"
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_event is not None
    assert plan.job_event.details["ErrorCode"] == "ExecutionTimeout"


def test_a_job_past_its_total_timeout_fails_and_stops_its_executions() -> None:
    j = job(task={"Timeouts": {"TotalTimeout": 30}})
    j.state = JobStateType.RUNNING
    plan = schedule(j, [running("e1", "a", NOW)], [node("a")], ev(), now=NOW + 31 * S)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_event is not None
    assert plan.job_event.details["ErrorCode"] == "ExecutionTimeout"
    assert "TotalTimeout of 30s" in plan.job_message
    assert [(c.execution_id, c.desired_state) for c in plan.changes] == [("e1", D.STOPPED)]


def test_overdue_trigger_names_what_is_overdue() -> None:
    settings = SchedulerSettings(execution_timeout_grace=5)
    total = job(task={"Timeouts": {"TotalTimeout": 30}})
    assert overdue_trigger(total, [], NOW + 29 * S, settings) == ""
    assert overdue_trigger(total, [], NOW + 31 * S, settings) == TriggeredBy.JOB_TIMEOUT
    timed = job(task={"Timeouts": {"ExecutionTimeout": 10}})
    ex = running("e1", "a", NOW)
    assert overdue_trigger(timed, [ex], NOW + 14 * S, settings) == ""
    assert overdue_trigger(timed, [ex], NOW + 16 * S, settings) == TriggeredBy.EXEC_TIMEOUT
    queued = job(task={"Timeouts": {"QueueTimeout": 60}})
    queued.state = JobStateType.QUEUED
    assert overdue_trigger(queued, [], NOW + 61 * S, settings) == TriggeredBy.JOB_QUEUE
    queued.state = JobStateType.FAILED
    assert overdue_trigger(queued, [], NOW + 61 * S, settings) == ""


def test_ops_jobs_are_held_to_their_timeouts_too() -> None:
    settings = SchedulerSettings(execution_timeout_grace=5)
    timed = job(task={"Timeouts": {"ExecutionTimeout": 10}})
    timed.type, timed.state = "ops", JobStateType.RUNNING
    ex = running("e1", "a", NOW)
    plan = schedule(timed, [ex], [node("a")], ev(), now=NOW + 16 * S, settings=settings)
    [change] = plan.changes
    assert change.cancel_on_node and change.compute_details["ErrorCode"] == "ExecutionTimeout"
    assert plan.new_job_state == JobStateType.FAILED
    total = job(task={"Timeouts": {"TotalTimeout": 30}})
    total.type, total.state = "ops", JobStateType.RUNNING
    ended = schedule(total, [ex], [node("a")], ev(), now=NOW + 31 * S)
    assert ended.new_job_state == JobStateType.FAILED
    assert [(c.execution_id, c.desired_state) for c in ended.changes] == [("e1", D.STOPPED)]
