"""Verified batch jobs: ``Count`` replicas of the same work on distinct nodes, then a verdict.

A verified job is not split into partitions: every execution is a replica of the whole job
(partition 0 of 1), run on a node that holds no other replica of it (ranking makes a node
that completed or runs one unsuitable). A failed replica is replaced within the job's retry
policy. Once every replica has finished (completed, or failed with no retry left), the
verifier compares the completed ones' results: the majority's are accepted, the others fail
verification, and the job completes; without a majority the job fails saying so. The verdict
also waits for the check of what each completed replica published (``_result_check``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bacalhau.errors import BacalhauError, ExecutionTimeout, NotEnoughNodes, VerificationFailed
from bacalhau.models import (
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    NodeState,
    TriggeredBy,
)
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._ranking import Placed, rank_nodes
from bacalhau.orchestrator._retries import fail_overdue, retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._verifier import (
    ACCEPTED,
    REJECTED,
    UNDECIDED,
    check_pending,
    verify_replicas,
)
from bacalhau.orchestrator.schedulers._shared import (
    ASKED,
    approve_bids,
    event,
    fail_job,
    fail_lost,
    later,
    mark_running,
    new_execution,
    not_enough_nodes,
    past_total_timeout,
    queue_expired,
    queue_room_left,
    queue_timeout_of,
    stop,
    wait_for_nodes,
)

__all__ = ["VERIFICATION_DETAIL", "schedule_verified"]

D = ExecutionDesiredStateType
E = ExecutionStateType

#: Execution (and event) detail holding the verifier's verdict: accepted or rejected.
VERIFICATION_DETAIL = "Verification"
#: Execution detail holding the CID its results were compared by.
RESULTS_CID_DETAIL = "ResultsCID"
_TOPIC = "Verification"


def schedule_verified(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeState],
    evaluation: Evaluation,
    *,
    now: int,
    settings: SchedulerSettings,
    rng: random.Random | None,
    settling_until: int,
    in_flight: Mapping[str, Placed] | None = None,
) -> Plan:
    """Place the replicas a verified job lacks; once all have finished, verify them."""
    plan = Plan(job=job, evaluation=evaluation)
    view = fail_lost(executions, nodes, plan, now, settings, settling_until=settling_until)

    def fail(message: str, error: type[BacalhauError] = NotEnoughNodes) -> Plan:
        return fail_job(plan, view, message, error, now)

    timed_out = past_total_timeout(job, now)
    if timed_out:
        return fail(timed_out, ExecutionTimeout)
    view = fail_overdue(job, view, plan, now, settings)

    replicas = max(job.count, 1)
    completed = [e for e in view if e.compute_state == E.COMPLETED]
    running = sum(1 for e in view if e.is_active() and e.desired_state == D.RUNNING)
    room = replicas - len(completed) - running

    def take(ex: Execution) -> str:
        nonlocal room
        if room <= 0:
            return "every replica is placed"
        room -= 1
        return ""

    approved, stopped = approve_bids(view, nodes, plan, now, take)

    live: list[Execution] = []
    for ex in sorted(view, key=lambda e: e.create_time):
        if not ex.is_active() or ex.id in stopped or ex.desired_state == D.STOPPED:
            continue
        if len(completed) + len(live) >= replicas:
            plan.changes.append(stop(ex, "every replica is placed", now))
            continue
        live.append(ex)
    missing = replicas - len(completed) - len(live)
    failed = [e for e in view if e.compute_state == E.FAILED]
    failures = [f"execution {e.id} on node {e.node_id}: {e.compute_message}" for e in failed]
    policy = retry_policy(job, settings)
    if missing > 0 and failed:
        if len(failed) >= policy.attempts:
            # No retry left: the replicas that completed are all there will be.
            missing = 0
        elif now < (retry_at := policy.retry_time(failed)):
            plan.new_evaluations.append(later(job, retry_at, now, TriggeredBy.EXEC_FAILURE))
            missing = 0
    if missing == 0 and not live and not plan.new_evaluations:
        if any(check_pending(e) for e in completed):
            # Every replica has finished, but what some published is still being checked
            # against the CID they claim: the verdict waits (the check's end looks again).
            return plan
        # Every replica has finished (completed, or failed with no retry left).
        return _verify(plan, job, view, completed, failures, now)
    if missing > 0:
        ranks = rank_nodes(
            job,
            nodes,
            view,
            rng=rng,
            attempts_per_node=policy.attempts_per_node,
            placed=in_flight,
            min_reputation=settings.min_reputation,
            now=now,
            lost_wait_ns=int(settings.lost_node_wait * 1_000_000_000),
            queue_room=queue_room_left(job, now),
        )
        placed = [r for r in ranks if r.suitable][:missing]
        desired_new = D.RUNNING if settings.pre_approve else D.PENDING
        for r in placed:
            # Every replica is the whole job: partition 0 of 1.
            plan.new_executions.append(
                new_execution(job, r.node.info.node_id, evaluation, desired_new, now, partition=0)
            )
        if len(placed) < missing and not wait_for_nodes(
            plan,
            job,
            ranks,
            now=now,
            settings=settings,
            settling_until=settling_until,
            nodes_needed=replicas,
            idle=not live and not placed,
        ):
            holding = len(completed) + len(live) + len(placed)
            return fail(
                queue_expired(queue_timeout_of(job, settings))
                + f"a verified job runs its {replicas} replicas on distinct nodes: it needs "
                f"{replicas - holding} more node(s), and no other suitable node is left.\n"
                + not_enough_nodes(job, missing, ranks, failures)
            )

    if approved or any(e.desired_state == D.RUNNING and e.compute_state not in ASKED for e in live):
        mark_running(plan, job, now)
    return plan


def _verify(
    plan: Plan,
    job: Job,
    view: Sequence[Execution],
    completed: Sequence[Execution],
    failures: Sequence[str],
    now: int,
) -> Plan:
    """Every replica has finished: accept the majority's results, reject the others, and
    complete the job; without a majority, fail it."""
    outcome = verify_replicas(max(job.count, 1), completed)
    summary = outcome.summary()
    if not outcome.accepted:
        if failures:
            summary += f"; last failure: {failures[-1]}"
        for verdict in outcome.verdicts:
            ex = next(e for e in completed if e.id == verdict.execution_id)
            plan.changes.append(
                ExecutionChange(
                    execution_id=ex.id,
                    compute_details={
                        **ex.compute_details,
                        VERIFICATION_DETAIL: UNDECIDED,
                        RESULTS_CID_DETAIL: verdict.cid,
                    },
                    event=event(
                        f"Verification: no majority (results {verdict.cid or 'without a CID'})",
                        _TOPIC,
                        now,
                        Verification=UNDECIDED,
                    ),
                )
            )
        return fail_job(plan, view, summary, VerificationFailed, now)
    by_id = {e.id: e for e in completed}
    for verdict in outcome.verdicts:
        ex = by_id[verdict.execution_id]
        details = {
            **ex.compute_details,
            VERIFICATION_DETAIL: verdict.verdict,
            RESULTS_CID_DETAIL: verdict.cid,
        }
        if verdict.verdict == ACCEPTED:
            plan.changes.append(
                ExecutionChange(
                    execution_id=ex.id,
                    compute_details=details,
                    event=event(
                        f"Verification: accepted (results {verdict.cid}, held by "
                        f"{dict(outcome.counts)[verdict.cid]} of {outcome.replicas} replicas)",
                        _TOPIC,
                        now,
                        Verification=ACCEPTED,
                        ResultsCID=verdict.cid,
                    ),
                )
            )
            continue
        message = verdict.message(outcome.accepted_cid)
        details.update(Failure(VerificationFailed.code, False).details())
        plan.changes.append(
            ExecutionChange(
                execution_id=ex.id,
                compute_state=E.FAILED,
                compute_message=message,
                compute_details=details,
                event=event(
                    message,
                    _TOPIC,
                    now,
                    IsError="true",
                    ErrorCode=VerificationFailed.code,
                    Verification=REJECTED,
                    ResultsCID=verdict.cid,
                    AcceptedCID=outcome.accepted_cid,
                ),
            )
        )
    plan.reputation = outcome.agreements()
    plan.new_job_state = JobStateType.COMPLETED
    plan.job_message = summary
    plan.job_event = event(
        f"Job completed. {summary}",
        _TOPIC,
        now,
        Verification=ACCEPTED,
        AcceptedCID=outcome.accepted_cid,
    )
    return plan
