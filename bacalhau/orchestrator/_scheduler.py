"""Schedulers: pure functions from (job, executions, nodes, now) to a :class:`Plan`.

No I/O happens here, so the whole decision logic is testable with plain values (the harness
in the tests records plans instead of mocking a store or a network).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

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
    new_evaluation_id,
    new_execution_id,
)
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._ranking import (
    DEFAULT_ATTEMPTS_PER_NODE,
    NodeRank,
    Obstacle,
    headroom,
    job_usage,
    rank_nodes,
)

D = ExecutionDesiredStateType
E = ExecutionStateType


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The operator's defaults; a job's own ``Reschedule`` and ``Timeouts`` take precedence."""

    #: Failed executions after which a batch job gives up (the first try included).
    max_attempts: int = 3
    #: Failed executions of one job a single node may have before it is not asked again.
    max_attempts_per_node: int = DEFAULT_ATTEMPTS_PER_NODE
    #: Wait before the first retry after a failure (seconds); doubled for each further
    #: failure, up to ``retry_max_delay``.
    retry_delay: float = 1.0
    retry_max_delay: float = 30.0
    #: Used when a job sets no QueueTimeout (seconds; 0 = fail as soon as no node fits,
    #: unless the only obstacle is nodes that are full: those free capacity by themselves).
    default_queue_timeout: int = 0
    #: Safety net only (a node joining or freeing capacity re-evaluates queued jobs at
    #: once): the first delay before a queued job is looked at again, in seconds; it grows
    #: with the time waited, up to ``queue_backoff_max``.
    queue_backoff: float = 1.0
    queue_backoff_max: float = 30.0
    #: When a node joins or frees capacity, at most this many queued jobs are re-evaluated
    #: (highest priority, then oldest, first): no thundering herd on one node.
    requeue_per_change: int = 16
    #: How long past its ExecutionTimeout an execution may stay unreported before the
    #: requester cancels it on its node and fails it (the node enforces the timeout itself;
    #: this catches a node that went silent).
    execution_timeout_grace: float = 30.0
    #: Seconds after the requester starts during which compute nodes that ran before may not
    #: have (re)joined yet (0: none). The orchestrator turns it into ``schedule``'s
    #: ``settling_until``.
    rejoin_grace: float = 0.0


def queued_jobs_for_node(
    queued: Sequence[Job],
    node: NodeState,
    *,
    limit: int = 16,
) -> list[Job]:
    """Which waiting jobs to re-evaluate now that ``node`` joined or has more room.

    Highest priority first, then oldest; only jobs the node could run, and only as many as
    fit in what it can take (its headroom), at most ``limit``. The others keep waiting for
    the next change (or their safety-net timer).
    """
    room = headroom(node)
    picked: list[Job] = []
    for job in sorted(queued, key=lambda j: (-j.priority, j.create_time, j.id)):
        if len(picked) >= limit:
            break
        if not job.tasks or job.state.is_terminal():
            continue
        if not all(r.suitable for r in rank_nodes(job, [node], [])):
            continue
        if room is not None:
            usage = job_usage(job)
            if not usage.fits_in(room):
                continue
            room = Resources(
                cpu=room.cpu - usage.cpu,
                memory=room.memory - usage.memory,
                disk=room.disk - usage.disk,
                gpu=room.gpu - usage.gpu,
            )
        picked.append(job)
    return picked


def overdue_trigger(
    job: Job, executions: Sequence[Execution], now: int, settings: SchedulerSettings
) -> str:
    """Why a live job must be evaluated now (a ``TriggeredBy`` value), or "" if nothing of
    it is overdue: past its TotalTimeout, an execution past its ExecutionTimeout plus the
    grace, or a queued job past its QueueTimeout. Housekeeping's safety net."""
    if not job.tasks or job.state.is_terminal():
        return ""
    timeouts = job.task.timeouts
    if timeouts.total_timeout and now - job.create_time > timeouts.total_timeout * 1e9:
        return TriggeredBy.JOB_TIMEOUT
    if timeouts.execution_timeout:
        overdue_after = (timeouts.execution_timeout + settings.execution_timeout_grace) * 1e9
        for ex in executions:
            if (
                ex.compute_state in (E.BID_ACCEPTED, E.RUNNING)
                and ex.desired_state == D.RUNNING
                and now - ex.modify_time > overdue_after
            ):
                return TriggeredBy.EXEC_TIMEOUT
    queue_timeout = timeouts.queue_timeout or settings.default_queue_timeout
    if (
        job.state == JobStateType.QUEUED
        and queue_timeout
        and now - job.create_time > queue_timeout * 1e9
    ):
        return TriggeredBy.JOB_QUEUE
    return ""


def schedule(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    settings: SchedulerSettings = SchedulerSettings(),
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
            job, executions, nodes, evaluation, now=now, rng=rng, settling_until=settling_until
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


#: Execution detail marking a failure that was the node's (lost), not the job's.
_NODE_LOST = "NodeLost"

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
                    _NODE_LOST: "true",
                },
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
                compute_details={**ex.compute_details, _NODE_LOST: "true"},
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
    for r in ranks:
        if not r.suitable:
            lines.append(f"• node {r.node.info.node_id} {r.reason}")
    if not ranks:
        lines.append("• no compute node has joined this requester")
    return "\n".join(lines)


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
    view = _fail_overdue(job, view, plan, now, settings)

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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A job's effective retry policy: its ``Reschedule`` block over the operator's defaults."""

    attempts: int
    attempts_per_node: int
    delay: float
    max_delay: float

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (exponential, capped)."""
        if failures <= 0 or self.delay <= 0:
            return 0.0
        return min(self.delay * 2.0 ** min(failures - 1, 62), max(self.max_delay, self.delay))

    def retry_time(self, failed: Sequence[Execution]) -> int:
        """When (Unix ns) the next attempt may start, given the failed executions.

        Only failures of the job itself back off: an execution lost with its node says
        nothing about the job, and its replacement should start at once.
        """
        own = [e for e in failed if e.compute_details.get(_NODE_LOST) != "true"]
        if not own:
            return 0
        last = max(e.modify_time for e in own)
        return last + int(self.backoff(len(own)) * 1_000_000_000)


def retry_policy(job: Job, settings: SchedulerSettings) -> RetryPolicy:
    """The retry policy that applies to ``job``."""
    own = job.reschedule
    delay = own.delay_seconds()
    max_delay = own.max_delay_seconds()
    return RetryPolicy(
        attempts=own.attempts or settings.max_attempts,
        attempts_per_node=own.attempts_per_node or settings.max_attempts_per_node,
        delay=settings.retry_delay if delay is None else delay,
        max_delay=settings.retry_max_delay if max_delay is None else max_delay,
    )


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


def waiting_reason(job: Job, ranks: Sequence[NodeRank]) -> str:
    """Why a job waits, one line, counting nodes by obstacle: "waiting for a node: 2 nodes
    lack the wasm engine; 1 node is full". Stable while the obstacles are, so it is recorded
    once and again only when it changes."""
    if not ranks:
        return "waiting for a node: no compute node has joined"
    counts: dict[str, int] = {}
    said: dict[str, Obstacle] = {}
    for r in ranks:
        if not r.suitable and r.obstacle is not None:
            counts[r.obstacle.one] = counts.get(r.obstacle.one, 0) + 1
            said[r.obstacle.one] = r.obstacle
    if not counts:
        return f"waiting for a node: {job.count} needed, fewer suitable"
    order = sorted(counts, key=lambda one: (-counts[one], one))
    return "waiting for a node: " + "; ".join(said[one].count(counts[one]) for one in order)


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


def _fail_overdue(
    job: Job,
    view: Sequence[Execution],
    plan: Plan,
    now: int,
    settings: SchedulerSettings,
) -> list[Execution]:
    """Executions running past their ExecutionTimeout (plus a grace) without a word from
    their node are failed here and cancelled on the node; returns the updated view.

    The node enforces the timeout itself and reports it; this is for a node that went
    silent or lost the report. The clock starts when the bid was accepted.
    """
    limit = job.task.timeouts.execution_timeout
    if not limit or job.type not in ("batch", "ops"):
        return list(view)
    overdue_after = int((limit + settings.execution_timeout_grace) * 1_000_000_000)
    out: list[Execution] = []
    for ex in view:
        if (
            ex.compute_state in (E.BID_ACCEPTED, E.RUNNING)
            and ex.desired_state == D.RUNNING
            and now - ex.modify_time > overdue_after
        ):
            msg = f"execution timed out: no result {limit}s after it started (ExecutionTimeout)"
            details = {"ErrorCode": ExecutionTimeout.code, "Retryable": "true"}
            plan.changes.append(
                ExecutionChange(
                    execution_id=ex.id,
                    desired_state=D.STOPPED,
                    desired_message=msg,
                    compute_state=E.FAILED,
                    compute_message=msg,
                    compute_details=details,
                    cancel_on_node=True,
                    event=_event(
                        msg,
                        "Execution",
                        now,
                        IsError="true",
                        Hint=ExecutionTimeout.default_hint,
                        **details,
                    ),
                )
            )
            ex = replace(
                ex,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details=details,
                modify_time=now,
            )
        out.append(ex)
    return out


def _schedule_ops(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    rng: random.Random | None,
    settling_until: int,
) -> Plan:
    """Ops jobs run once on every matching node, pre-approved, without retries."""
    plan = Plan(job=job, evaluation=evaluation)
    view = _fail_lost(executions, nodes, plan, now, settling_until=settling_until)
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
