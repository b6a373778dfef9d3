"""What every job type's scheduler shares: events, stopping and failing executions and jobs,
lost nodes, new executions and delayed evaluations. Pure, like the schedulers themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from bacalhau._wall_steps import elapsed_ns
from bacalhau.errors import BacalhauError, NodeLost
from bacalhau.models import (
    Connection,
    Evaluation,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    LivenessState,
    Membership,
    NodeState,
    Resources,
    TriggeredBy,
    format_cpu,
    format_size,
    new_evaluation_id,
    new_execution_id,
)
from bacalhau.orchestrator._attempts import NEVER_STARTED, QUEUED, as_final
from bacalhau.orchestrator._node_listing import node_lookup
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._ranking import NodeRank, job_usage
from bacalhau.orchestrator._retries import NODE_LOST
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._waiting import waiting_reason

D = ExecutionDesiredStateType
E = ExecutionStateType

#: Observed states of an execution whose node has not answered its ask yet.
ASKED = frozenset({E.NEW, E.ASK_FOR_BID})

#: How long after the grace ends a waiting job is looked at again: timers may fire a little
#: early, and an evaluation still inside the grace would only schedule another one.
AFTER_GRACE_NS = 100_000_000


def look_again_after_grace(plan: Plan, now: int, settling_until: int) -> None:
    """Have the job evaluated again once the grace is over (once per plan)."""
    wait_until = settling_until + AFTER_GRACE_NS
    if any(ev.wait_until == wait_until for ev in plan.new_evaluations):
        return
    job = plan.job
    plan.new_evaluations.append(
        Evaluation(
            id=new_evaluation_id(),
            job_id=job.id,
            namespace=job.namespace,
            type=job.type,
            triggered_by=TriggeredBy.JOB_QUEUE,
            priority=job.priority,
            wait_until=wait_until,
            create_time=now,
            modify_time=now,
        )
    )


def event(message: str, topic: str, now: int, **details: str) -> Event:
    return Event(message=message, topic=topic, timestamp=now, details=dict(details))


def approve_bids(
    view: Sequence[Execution],
    nodes: Sequence[NodeState],
    plan: Plan,
    now: int,
    take: Callable[[Execution], str],
) -> tuple[int, set[str]]:
    """Decide the accepted bids waiting for approval, oldest first: a bid from a node an
    operator has not approved (or rejected since it was asked) is rejected; any other is put
    to ``take``, the scheduler's rule, which returns "" to approve it (and counts it as
    running) or why it is rejected. Returns how many were approved and the executions
    stopped instead."""
    find = node_lookup(nodes)
    approved = 0
    stopped: set[str] = set()
    for ex in sorted(view, key=lambda e: e.create_time):
        if ex.compute_state != E.ASK_FOR_BID_ACCEPTED or ex.desired_state != D.PENDING:
            continue
        node = find(ex.node_id)
        member = node is not None and node.membership == Membership.APPROVED
        reason = take(ex) if member else "the node is not approved"
        if reason:
            stopped.add(ex.id)
            plan.changes.append(stop(ex, f"bid rejected: {reason}", now))
            continue
        approved += 1
        plan.changes.append(
            ExecutionChange(
                execution_id=ex.id,
                desired_state=D.RUNNING,
                desired_message="bid accepted",
                event=event("Bid accepted", "Scheduling", now),
            )
        )
    return approved, stopped


def approve_per_node(
    view: Sequence[Execution], nodes: Sequence[NodeState], plan: Plan, now: int
) -> tuple[int, set[str]]:
    """Approve the bids of job types that run once per node (ops, daemon) when they were
    not sent pre-approved: the oldest accepted bid of each approved node that runs nothing
    of the job yet."""
    running = {e.node_id for e in view if e.is_active() and e.desired_state == D.RUNNING}

    def take(ex: Execution) -> str:
        if ex.node_id in running:
            return "the node already runs the job"
        running.add(ex.node_id)
        return ""

    return approve_bids(view, nodes, plan, now, take)


def stop(ex: Execution, message: str, now: int) -> ExecutionChange:
    return ExecutionChange(
        execution_id=ex.id,
        desired_state=D.STOPPED,
        desired_message=message,
        event=event(message, "Scheduling", now),
    )


def fail_lost(
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    plan: Plan,
    now: int,
    settings: SchedulerSettings,
    *,
    settling_until: int = 0,
) -> list[Execution]:
    """Executions on nodes that vanished or disconnected are failed; returns the live view.

    While the requester settles after its start, a node not heard from yet is unknown rather
    than gone: its executions are left alone and the job is looked at again when the grace
    ends (a node that rejoins sooner triggers that on its own). A node declared dead keeps
    its executions until it has been silent ``settings.lost_execution_grace`` (a stalled
    process comes back); the job is looked at again then.
    """
    grace_ns = int(settings.lost_execution_grace * 1_000_000_000)
    find = node_lookup(nodes)
    view: list[Execution] = []
    unknown = False
    look_again = 0
    for ex in executions:
        node = find(ex.node_id)
        if ex.is_active() and node is None and now < settling_until:
            unknown = True
            view.append(ex)
            continue
        lost = ex.is_active() and (node is None or node.connection != Connection.CONNECTED)
        if lost and node is not None and grace_ns > 0 and node.liveness != LivenessState.LEFT:
            until = node.last_seen_ns + grace_ns
            if node.last_seen_ns > 0 and now < until:
                look_again = min(look_again or until, until)
                lost = False
        if not lost:
            view.append(ex)
            continue
        msg = node_lost_message(ex, node, now)
        # One that only waited in the node's queue never ran: no attempt at the job.
        flags = (NODE_LOST, NEVER_STARTED) if QUEUED in ex.compute_details else (NODE_LOST,)
        if len(flags) > 1:
            msg += " (waiting in its run queue: it never started)"
        plan.changes.append(
            ExecutionChange(
                execution_id=ex.id,
                desired_state=D.STOPPED,
                desired_message=msg,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details=Failure(NodeLost.code, True, flags=flags).details(error=False),
                # Usually unreachable; but a node that is back already must not run on.
                cancel_on_node=True,
                event=event(
                    msg,
                    "Execution",
                    now,
                    **Failure(NodeLost.code, True, hint=NodeLost.default_hint).details(),
                ),
            )
        )
        view.append(
            replace(
                ex,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details={**ex.compute_details, **{flag: "true" for flag in flags}},
                modify_time=now,
            )
        )
    if unknown:
        look_again_after_grace(plan, now, settling_until)
    if look_again:
        plan.new_evaluations.append(
            later(plan.job, look_again + AFTER_GRACE_NS, now, TriggeredBy.NODE_UPDATE)
        )
    return view


def node_lost_message(ex: Execution, node: NodeState | None, now: int) -> str:
    """The "node lost" message: which node, how long it was silent, what it was doing."""
    if node is None:
        why = "disappeared"
    elif node.last_seen_ns <= 0:
        why = "disconnected"
    else:
        why = f"disconnected (silent for {max(0, now - node.last_seen_ns) / 1e9:.1f}s)"
    return f"node {ex.node_id} {why} while the execution was {ex.compute_state.label}"


def fail_job(
    plan: Plan,
    view: Sequence[Execution],
    message: str,
    error: type[BacalhauError],
    now: int,
    *,
    code: str = "",
    hint: str = "",
) -> Plan:
    """Fail the job with a coded, hinted event and stop whatever still runs. ``code``
    overrides ``error``'s code (the last execution's own error, e.g. ExecutionTimeout),
    ``hint`` its default hint."""
    plan.new_job_state = JobStateType.FAILED
    plan.job_message = message
    plan.job_event = event(
        message,
        "Scheduling",
        now,
        IsError="true",
        ErrorCode=code or error.code,
        Hint=hint or error.default_hint,
    )
    for ex in view:
        if ex.is_active() and ex.desired_state != D.STOPPED:
            plan.changes.append(stop(ex, "job failed", now))
    return plan


def not_enough_nodes(job: Job, needed: int, ranks: list[NodeRank], failures: list[str]) -> str:
    suitable = sum(1 for r in ranks if r.suitable)
    lines = [
        f"not enough nodes to run job. requested: {needed}, available: {len(ranks)}, "
        f"suitable: {suitable}."
    ]
    if failures:
        lines.insert(0, f"job failed: {failures[-1]}")
    too_big = _too_big_for_every_node(job, ranks)
    if too_big:
        lines.append(too_big)
    for r in ranks:
        if not r.suitable:
            # The job fails: a node it would have asked again later is not.
            lines.append(f"• node {r.node.info.node_id} {as_final(r.reason)}")
    if not ranks:
        lines.append("• no compute node has joined this requester")
    return "\n".join(lines)


def _too_big_for_every_node(job: Job, ranks: list[NodeRank]) -> str:
    """The numbers, when the job asks more than every node that says its limits offers.

    Per resource, "the most offered" is the largest of any node's job limit (its
    ``MaxJobRequirements``), so the user sees what to ask for at most.
    """
    limits = [
        r.node.info.compute.max_job_requirements
        for r in ranks
        if r.node.info.compute is not None and r.node.info.compute.max_job_requirements.cpu
    ]
    asked = job_usage(job)
    if not limits or any(asked.fits_in(limit) for limit in limits):
        return ""
    most = Resources(
        cpu=max(limit.cpu for limit in limits),
        memory=max(limit.memory for limit in limits),
        disk=max(limit.disk for limit in limits),
        gpu=max(limit.gpu for limit in limits),
    )
    return (
        f"the job asks for more than any node offers: asked {_quantities(asked)}; "
        f"the most any node offers: {_quantities(most)}"
    )


def _quantities(r: Resources) -> str:
    return (
        f"CPU {format_cpu(r.cpu)}, memory {format_size(r.memory)}, "
        f"disk {format_size(r.disk)}, GPU {r.gpu}"
    )


def queue_for_nodes(plan: Plan, now: int) -> None:
    plan.new_job_state = JobStateType.QUEUED
    plan.job_message = "waiting for compute nodes to join: the requester started recently"
    plan.job_event = event(
        "Job queued: waiting for compute nodes to join after the requester started",
        "Queueing",
        now,
    )


def new_execution(
    job: Job, node_id: str, evaluation: Evaluation, desired: D, now: int, *, partition: int = 0
) -> Execution:
    """A new execution of ``job`` on ``node_id`` running partition ``partition``."""
    return Execution(
        id=new_execution_id(),
        job_id=job.id,
        node_id=node_id,
        namespace=job.namespace,
        eval_id=evaluation.id,
        name=job.name,
        task_name=job.task.name,
        allocated=job_usage(job),
        desired_state=desired,
        compute_state=E.NEW,
        partition_index=partition,
        job_version=job.version,
        create_time=now,
        modify_time=now,
    )


def later(job: Job, wait_until: int, now: int, triggered_by: str) -> Evaluation:
    return Evaluation(
        id=new_evaluation_id(),
        job_id=job.id,
        namespace=job.namespace,
        type=job.type,
        triggered_by=triggered_by,
        priority=job.priority,
        wait_until=wait_until,
        create_time=now,
        modify_time=now,
    )


def queue_expired(queue_timeout: int) -> str:
    if not queue_timeout:
        return ""
    return f"the job waited its QueueTimeout of {queue_timeout}s for a node.\n"


def queue_timeout_of(job: Job, settings: SchedulerSettings) -> int:
    """The job's ``QueueTimeout`` in seconds (the requester's default when unset; 0: none)."""
    return job.task.timeouts.queue_timeout or settings.default_queue_timeout


def queue_room_left(job: Job, now: int) -> bool:
    """Whether an execution of ``job`` may still wait in a node's run queue: not once the
    job's own QueueTimeout (counted from its creation, as nodes count it) has passed, since
    the node would fail it at once. Ranking then offers only nodes with free room. (The
    requester's default QueueTimeout is its own: nodes do not enforce it.)"""
    queue_timeout = job.task.timeouts.queue_timeout if job.tasks else 0
    return not queue_timeout or elapsed_ns(job.started_ns(), now) < queue_timeout * 1_000_000_000


def wait_for_nodes(
    plan: Plan,
    job: Job,
    ranks: Sequence[NodeRank],
    *,
    now: int,
    settings: SchedulerSettings,
    settling_until: int,
    nodes_needed: int,
    idle: bool,
) -> bool:
    """A job lacks suitable nodes: plan to look again and return True when it should wait,
    or return False when it should fail now.

    It waits, queued, right after the requester started while fewer nodes than
    ``nodes_needed`` are known (their capacity is unknown, not missing); within its
    ``QueueTimeout``; or, without one, while every node in the way is only full (it frees
    capacity by itself). ``idle`` (nothing of the job placed or running) lets the plan say why
    the job is queued.
    """
    queue_timeout = queue_timeout_of(job, settings)
    # Counted without the wall clock's forward steps (see bacalhau._wall_steps).
    waited = elapsed_ns(job.started_ns(), now)
    deadline = now + queue_timeout * 1_000_000_000 - waited if queue_timeout else 0
    passing = any(r.obstacle is not None and r.obstacle.passing for r in ranks if not r.suitable)
    if now < settling_until and len(ranks) < nodes_needed:
        look_again_after_grace(plan, now, settling_until)
        if idle and job.state != JobStateType.QUEUED:
            queue_for_nodes(plan, now)
        return True
    if (deadline and now < deadline) or (not queue_timeout and passing):
        backoff = min(max(settings.queue_backoff, waited / 2e9), settings.queue_backoff_max)
        wait_until = now + int(backoff * 1_000_000_000)
        if deadline:
            # Look again right when the QueueTimeout passes, to fail on time.
            wait_until = min(wait_until, deadline + AFTER_GRACE_NS)
        plan.new_evaluations.append(later(job, wait_until, now, TriggeredBy.JOB_QUEUE))
        if idle:
            queue_waiting(plan, job, ranks, now)
        return True
    return False


def queue_waiting(plan: Plan, job: Job, ranks: Sequence[NodeRank], now: int) -> None:
    """Queue the job saying why; said again only when the reason changes."""
    reason = waiting_reason(job, ranks)
    if job.state == JobStateType.QUEUED and job.state_message.split("\n", 1)[0] == reason:
        return
    plan.new_job_state = JobStateType.QUEUED
    # The state message adds each node's own reason below the summary (for `job describe`);
    # only the summary line decides whether the reason changed.
    plan.job_message = "\n".join(
        [reason, *(f"• node {r.node.info.node_id} {r.reason}" for r in ranks if not r.suitable)]
    )
    plan.job_event = event(f"Job queued: {reason}", "Queueing", now)


def stop_all(job: Job, executions: Sequence[Execution], evaluation: Evaluation, now: int) -> Plan:
    """A finished job's remaining executions are stopped, whatever its type."""
    plan = Plan(job=job, evaluation=evaluation)
    for ex in executions:
        if ex.is_active() and ex.desired_state != D.STOPPED:
            plan.changes.append(stop(ex, f"job is {job.state.wire.lower()}", now))
    return plan


def past_total_timeout(job: Job, now: int) -> str:
    """The failure message when ``job`` ran past its TotalTimeout, else ""."""
    total = job.task.timeouts.total_timeout
    if total and elapsed_ns(job.started_ns(), now) > total * 1_000_000_000:
        return f"Job timed out: it ran past its TotalTimeout of {total}s"
    return ""


def mark_running(plan: Plan, job: Job, now: int) -> None:
    """A pending or queued job whose executions were started is Running."""
    if job.state in (JobStateType.PENDING, JobStateType.QUEUED):
        plan.new_job_state = JobStateType.RUNNING
        plan.job_event = event("Running", "State Update", now)
