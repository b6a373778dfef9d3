"""Schedulers: pure functions from (job, executions, nodes, now) to a :class:`Plan`.

No I/O happens here, so the whole decision logic is testable with plain values (the harness
in the tests records plans instead of mocking a store or a network).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from bacalhau.errors import (
    BacalhauError,
    ExecutionFailed,
    ExecutionTimeout,
    NodeLost,
    NotEnoughNodes,
)
from bacalhau.models import (
    Connection,
    Evaluation,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    Membership,
    NodeState,
    Resources,
    TriggeredBy,
    format_size,
    new_evaluation_id,
    new_execution_id,
)
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._ranking import NodeRank, job_usage, rank_nodes
from bacalhau.orchestrator._retries import NODE_LOST, fail_overdue, retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._waiting import waiting_reason

__all__ = ["SchedulerSettings", "schedule"]

D = ExecutionDesiredStateType
E = ExecutionStateType
_DEFAULTS = SchedulerSettings()


def schedule(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    settings: SchedulerSettings = _DEFAULTS,
    rng: random.Random | None = None,
    settling_until: int = 0,
) -> Plan:
    """Decide the next step for ``job``.

    Until ``settling_until`` (ns; the requester started recently) the node view may be
    incomplete: a node not heard from is unknown, not gone, so its executions are not failed,
    and a job that lacks nodes waits for them to join instead of failing; the job is
    evaluated again when the grace ends (and whenever a node joins).
    """
    if job.state.is_terminal():
        # Whatever the type: a finished job's remaining executions are stopped.
        plan = Plan(job=job, evaluation=evaluation)
        for ex in executions:
            if ex.is_active() and ex.desired_state != D.STOPPED:
                plan.changes.append(_stop(ex, f"job is {job.state.wire.lower()}", now))
        return plan
    if job.type == "ops":
        return _schedule_ops(
            job,
            executions,
            nodes,
            evaluation,
            now=now,
            settings=settings,
            rng=rng,
            settling_until=settling_until,
        )
    return _schedule_batch(
        job,
        executions,
        nodes,
        evaluation,
        now=now,
        settings=settings,
        rng=rng,
        settling_until=settling_until,
    )


#: How long after the grace ends a waiting job is looked at again: timers may fire a little
#: early, and an evaluation still inside the grace would only schedule another one.
_AFTER_GRACE_NS = 100_000_000


def _look_again_after_grace(plan: Plan, now: int, settling_until: int) -> None:
    """Have the job evaluated again once the grace is over (once per plan)."""
    wait_until = settling_until + _AFTER_GRACE_NS
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


def _event(message: str, topic: str, now: int, **details: str) -> Event:
    return Event(message=message, topic=topic, timestamp=now, details=dict(details))


def _stop(ex: Execution, message: str, now: int) -> ExecutionChange:
    return ExecutionChange(
        execution_id=ex.id,
        desired_state=D.STOPPED,
        desired_message=message,
        event=_event(message, "Scheduling", now),
    )


def _fail_lost(
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    plan: Plan,
    now: int,
    *,
    settling_until: int = 0,
) -> list[Execution]:
    """Executions on nodes that vanished or disconnected are failed; returns the live view.

    While the requester settles after its start, a node not heard from yet is unknown rather
    than gone: its executions are left alone and the job is looked at again when the grace
    ends (a node that rejoins sooner triggers that on its own).
    """
    by_id = {n.info.node_id: n for n in nodes}
    view: list[Execution] = []
    unknown = False
    for ex in executions:
        node = by_id.get(ex.node_id)
        if ex.is_active() and node is None and now < settling_until:
            unknown = True
            view.append(ex)
            continue
        lost = ex.is_active() and (node is None or node.connection != Connection.CONNECTED)
        if not lost:
            view.append(ex)
            continue
        msg = node_lost_message(ex, node, now)
        plan.changes.append(
            ExecutionChange(
                execution_id=ex.id,
                desired_state=D.STOPPED,
                desired_message=msg,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details={
                    "Retryable": "true",
                    "ErrorCode": NodeLost.code,
                    NODE_LOST: "true",
                },
                # Usually unreachable; but a node that is back already must not run on.
                cancel_on_node=True,
                event=_event(
                    msg,
                    "Execution",
                    now,
                    IsError="true",
                    Retryable="true",
                    ErrorCode=NodeLost.code,
                    Hint=NodeLost.default_hint,
                ),
            )
        )
        view.append(
            replace(
                ex,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details={**ex.compute_details, NODE_LOST: "true"},
                modify_time=now,
            )
        )
    if unknown:
        _look_again_after_grace(plan, now, settling_until)
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


def _fail(
    plan: Plan,
    view: Sequence[Execution],
    message: str,
    error: type[BacalhauError],
    now: int,
    *,
    code: str = "",
) -> Plan:
    """Fail the job with a coded, hinted event and stop whatever still runs. ``code``
    overrides ``error``'s code (the last execution's own error, e.g. ExecutionTimeout)."""
    plan.new_job_state = JobStateType.FAILED
    plan.job_message = message
    plan.job_event = _event(
        message,
        "Scheduling",
        now,
        IsError="true",
        ErrorCode=code or error.code,
        Hint=error.default_hint,
    )
    for ex in view:
        if ex.is_active() and ex.desired_state != D.STOPPED:
            plan.changes.append(_stop(ex, "job failed", now))
    return plan


def _not_enough_nodes(job: Job, needed: int, ranks: list[NodeRank], failures: list[str]) -> str:
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
            lines.append(f"• node {r.node.info.node_id} {r.reason}")
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
    return f"CPU {r.cpu:g}, memory {format_size(r.memory)}, disk {format_size(r.disk)}, GPU {r.gpu}"


def _queue_for_nodes(plan: Plan, now: int) -> None:
    plan.new_job_state = JobStateType.QUEUED
    plan.job_message = "waiting for compute nodes to join: the requester started recently"
    plan.job_event = _event(
        "Job queued: waiting for compute nodes to join after the requester started",
        "Queueing",
        now,
    )


def _new_execution(
    job: Job, node_id: str, evaluation: Evaluation, desired: D, now: int
) -> Execution:
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
        create_time=now,
        modify_time=now,
    )


def _schedule_batch(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    settings: SchedulerSettings,
    rng: random.Random | None,
    settling_until: int,
) -> Plan:
    plan = Plan(job=job, evaluation=evaluation)

    view = _fail_lost(executions, nodes, plan, now, settling_until=settling_until)

    def fail_job(message: str, error: type[BacalhauError] = NotEnoughNodes) -> Plan:
        return _fail(plan, view, message, error, now)

    total = job.task.timeouts.total_timeout
    if total and now - job.create_time > total * 1_000_000_000:
        return fail_job(
            f"Job timed out: it ran past its TotalTimeout of {total}s", ExecutionTimeout
        )
    view = fail_overdue(job, view, plan, now, settings)

    completed = [e for e in view if e.compute_state == E.COMPLETED]
    desired = job.count - len(completed)
    if desired <= 0:
        plan.new_job_state = JobStateType.COMPLETED
        plan.job_event = _event("Job completed", "State Update", now)
        for ex in view:
            if ex.is_active() and ex.desired_state != D.STOPPED:
                plan.changes.append(
                    _stop(
                        ex,
                        "Execution stop requested because there are more executions than needed",
                        now,
                    )
                )
        return plan

    # Approve bids oldest-first until enough are running; reject the surplus, and bids from
    # nodes an operator has not approved (or rejected since it was asked).
    running = [e for e in view if e.is_active() and e.desired_state == D.RUNNING]
    members = {n.info.node_id for n in nodes if n.membership == Membership.APPROVED}
    approved = 0
    rejected_ids: set[str] = set()
    for ex in sorted(view, key=lambda e: e.create_time):
        if ex.compute_state == E.ASK_FOR_BID_ACCEPTED and ex.desired_state == D.PENDING:
            if ex.node_id not in members:
                rejected_ids.add(ex.id)
                plan.changes.append(_stop(ex, "bid rejected: the node is not approved", now))
            elif len(running) + approved < desired:
                approved += 1
                plan.changes.append(
                    ExecutionChange(
                        execution_id=ex.id,
                        desired_state=D.RUNNING,
                        desired_message="bid accepted",
                        event=_event("Bid accepted", "Scheduling", now),
                    )
                )
            else:
                rejected_ids.add(ex.id)
                plan.changes.append(_stop(ex, "bid rejected: enough executions are running", now))

    active = [
        e
        for e in view
        if e.is_active() and e.id not in rejected_ids and e.desired_state != D.STOPPED
    ]
    missing = desired - len(active)
    failed = [e for e in view if e.compute_state == E.FAILED]
    failures = [f"execution {e.id} on node {e.node_id}: {e.compute_message}" for e in failed]
    policy = retry_policy(job, settings)
    if missing > 0 and failed:
        if len(failed) >= policy.attempts:
            last = max(failed, key=lambda e: e.modify_time)
            return _fail(
                plan,
                view,
                f"Job failed because it has been retried too many times ({len(failed)} "
                f"failed executions of {policy.attempts} allowed); last error: {failures[-1]}",
                ExecutionFailed,
                now,
                code=last.compute_details.get("ErrorCode", ""),
            )
        retry_at = policy.retry_time(failed)
        if now < retry_at:
            # Back off before the next attempt; the delayed evaluation places it.
            plan.new_evaluations.append(_later(job, retry_at, now, TriggeredBy.EXEC_FAILURE))
            missing = 0
    if missing > 0:
        ranks = rank_nodes(job, nodes, view, rng=rng, attempts_per_node=policy.attempts_per_node)
        suitable = [r for r in ranks if r.suitable]
        placed = suitable[:missing]
        for r in placed:
            plan.new_executions.append(
                _new_execution(job, r.node.info.node_id, evaluation, D.PENDING, now)
            )
        if len(placed) < missing:
            queue_timeout = job.task.timeouts.queue_timeout or settings.default_queue_timeout
            waited = now - job.create_time
            deadline = job.create_time + queue_timeout * 1_000_000_000 if queue_timeout else 0
            # Nodes that are only full free capacity by themselves: without a QueueTimeout
            # the job waits for them (as it would have in their own queue) instead of failing.
            passing = any(
                r.obstacle is not None and r.obstacle.passing for r in ranks if not r.suitable
            )
            if now < settling_until and len(ranks) < job.count:
                # Fewer nodes known than the job needs, just after the requester started:
                # the capacity is unknown, not missing. Wait for nodes to (re)join.
                _look_again_after_grace(plan, now, settling_until)
                if not active and not placed and job.state != JobStateType.QUEUED:
                    _queue_for_nodes(plan, now)
            elif (deadline and now < deadline) or (not queue_timeout and passing):
                backoff = min(max(settings.queue_backoff, waited / 2e9), settings.queue_backoff_max)
                wait_until = now + int(backoff * 1_000_000_000)
                if deadline:
                    # Look again right when the QueueTimeout passes, to fail on time.
                    wait_until = min(wait_until, deadline + _AFTER_GRACE_NS)
                plan.new_evaluations.append(_later(job, wait_until, now, TriggeredBy.JOB_QUEUE))
                if not active and not placed:
                    _queue_waiting(plan, job, ranks, now)
            elif not active and not placed:
                return fail_job(
                    _queue_expired(queue_timeout) + _not_enough_nodes(job, missing, ranks, failures)
                )
            elif len(placed) + len(active) < desired:
                # Some capacity exists but never enough for Count: fail instead of hanging.
                return fail_job(
                    _queue_expired(queue_timeout) + _not_enough_nodes(job, missing, ranks, failures)
                )

    if job.state in (JobStateType.PENDING, JobStateType.QUEUED) and (
        approved or any(e.desired_state == D.RUNNING for e in active)
    ):
        plan.new_job_state = JobStateType.RUNNING
        plan.job_event = _event("Running", "State Update", now)
    return plan


def _later(job: Job, wait_until: int, now: int, triggered_by: str) -> Evaluation:
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


def _queue_expired(queue_timeout: int) -> str:
    if not queue_timeout:
        return ""
    return f"the job waited its QueueTimeout of {queue_timeout}s for a node.\n"


def _queue_waiting(plan: Plan, job: Job, ranks: Sequence[NodeRank], now: int) -> None:
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
    plan.job_event = _event(f"Job queued: {reason}", "Queueing", now)


def _schedule_ops(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    settings: SchedulerSettings,
    rng: random.Random | None,
    settling_until: int,
) -> Plan:
    """Ops jobs run once on every matching node, pre-approved, without retries."""
    plan = Plan(job=job, evaluation=evaluation)
    view = _fail_lost(executions, nodes, plan, now, settling_until=settling_until)
    total = job.task.timeouts.total_timeout
    if total and now - job.create_time > total * 1_000_000_000:
        return _fail(
            plan,
            view,
            f"Job timed out: it ran past its TotalTimeout of {total}s",
            ExecutionTimeout,
            now,
        )
    view = fail_overdue(job, view, plan, now, settings)
    if not view:
        ranks = rank_nodes(job, nodes, view, rng=rng)
        suitable = [r for r in ranks if r.suitable]
        if not ranks and now < settling_until:
            _look_again_after_grace(plan, now, settling_until)
            if job.state != JobStateType.QUEUED:
                _queue_for_nodes(plan, now)
            return plan
        if not suitable:
            return _fail(plan, view, _not_enough_nodes(job, 1, ranks, []), NotEnoughNodes, now)
        for r in suitable:
            plan.new_executions.append(
                _new_execution(job, r.node.info.node_id, evaluation, D.RUNNING, now)
            )
        plan.new_job_state = JobStateType.RUNNING
        plan.job_event = _event("Running", "State Update", now)
        return plan
    if any(e.is_active() for e in view):
        return plan
    failed = [e for e in view if e.compute_state != E.COMPLETED]
    if failed:
        plan.new_job_state = JobStateType.FAILED
        plan.job_message = (
            f"{len(failed)} of {len(view)} executions failed: {failed[0].compute_message}"
        )
        plan.job_event = _event(plan.job_message, "Scheduling", now, IsError="true")
    else:
        plan.new_job_state = JobStateType.COMPLETED
        plan.job_event = _event("Job completed", "State Update", now)
    return plan
