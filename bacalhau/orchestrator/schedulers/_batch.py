"""Batch jobs: ``Count`` partitions, each run once to completion and retried on its own.

A batch job with ``Count`` N is N partitions (Bacalhau v1.7+): partition ``i`` is done when
one execution of it completed. Each partition has at most one live execution; a failed one is
replaced by a new execution of the same partition, within the job's retry policy.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bacalhau.errors import BacalhauError, ExecutionFailed, ExecutionTimeout, NotEnoughNodes
from bacalhau.models import (
    ERROR_CODE,
    HINT,
    IN_THE_JOB,
    NOT_IN_CLUSTER,
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeState,
    TriggeredBy,
)
from bacalhau.orchestrator._attempts import is_attempt
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import FAILED_HERE, Placed, rank_nodes
from bacalhau.orchestrator._retries import fail_overdue, retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator.schedulers._shared import (
    ASKED,
    approve_bids,
    event,
    fail_job,
    fail_lost,
    later,
    new_execution,
    not_enough_nodes,
    past_total_timeout,
    queue_expired,
    queue_room_left,
    queue_timeout_of,
    stop,
    wait_for_nodes,
)
from bacalhau.orchestrator.schedulers._verified import schedule_verified

#: The hint of a job that failed on every node that could run it (when its own error has none).
FAILED_ON_EVERY_NODE = (
    "the job failed on every node that could run it, for the reasons above: fix the job "
    "(its command, image or inputs) rather than adding nodes"
)

__all__ = ["schedule_batch"]

D = ExecutionDesiredStateType
E = ExecutionStateType

_SURPLUS = "Execution stop requested because there are more executions than needed"


def schedule_batch(
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
    """Approve bids, place the partitions that have no live execution, complete the job when
    every partition completed (or fail it when retries or nodes run out). A verified job's
    executions are replicas instead (see ``schedule_verified``)."""
    if job.verified:
        return schedule_verified(
            job,
            executions,
            nodes,
            evaluation,
            now=now,
            settings=settings,
            rng=rng,
            settling_until=settling_until,
            in_flight=in_flight,
        )
    plan = Plan(job=job, evaluation=evaluation)
    view = fail_lost(executions, nodes, plan, now, settings, settling_until=settling_until)

    def fail(message: str, error: type[BacalhauError] = NotEnoughNodes) -> Plan:
        return fail_job(plan, view, message, error, now)

    timed_out = past_total_timeout(job, now)
    if timed_out:
        return fail(timed_out, ExecutionTimeout)
    view = fail_overdue(job, view, plan, now, settings)

    partitions = max(job.count, 1)
    done = {e.partition_index for e in view if e.compute_state == E.COMPLETED}
    desired = partitions - len(done)
    if desired <= 0:
        plan.new_job_state = JobStateType.COMPLETED
        plan.job_event = event("Job completed", "State Update", now)
        for ex in view:
            if ex.is_active() and ex.desired_state != D.STOPPED:
                plan.changes.append(stop(ex, _SURPLUS, now))
        return plan

    # Approve bids oldest-first, one live execution per partition; reject the surplus, and
    # bids from nodes an operator has not approved (or rejected since it was asked).
    running = {e.partition_index for e in view if e.is_active() and e.desired_state == D.RUNNING}

    def take(ex: Execution) -> str:
        if ex.partition_index in running or ex.partition_index in done:
            return "enough executions are running"
        running.add(ex.partition_index)
        return ""

    approved, stopped = approve_bids(view, nodes, plan, now, take)

    live: dict[int, Execution] = {}
    for ex in sorted(view, key=lambda e: e.create_time):
        if not ex.is_active() or ex.id in stopped or ex.desired_state == D.STOPPED:
            continue
        if ex.partition_index in done or ex.partition_index in live:
            # A partition runs once: a second live execution of it is surplus.
            plan.changes.append(stop(ex, _SURPLUS, now))
            continue
        live[ex.partition_index] = ex
    active = list(live.values())
    missing_parts = [p for p in range(partitions) if p not in done and p not in live]
    missing = len(missing_parts)
    # An ask the node never got (it could not be reached) is no attempt at the job.
    failed = [e for e in view if e.compute_state == E.FAILED and is_attempt(e)]
    failures = [f"execution {e.id} on node {e.node_id}: {e.compute_message}" for e in failed]
    policy = retry_policy(job, settings)
    nowhere = [e for e in failed if e.compute_details.get(NOT_IN_CLUSTER) == "true"]
    # The job's own spec failed it (a WASM import nothing provides): so would every node.
    own_fault = [e for e in failed if e.compute_details.get(IN_THE_JOB) == "true"]
    if missing > 0 and (nowhere or own_fault):
        # Its node asked every member of the cluster for the input, and none had it: another
        # node would ask the same members and wait as long for nothing.
        last = max(nowhere or own_fault, key=lambda e: e.modify_time)
        why = "its input is in no node of the cluster" if nowhere else "of its own spec"
        return fail_job(
            plan,
            view,
            f"Job failed because {why} (not retried elsewhere): execution {last.id} on node "
            f"{last.node_id}: {last.compute_message}",
            ExecutionFailed,
            now,
            code=last.compute_details.get(ERROR_CODE, ""),
            hint=last.compute_details.get(HINT, ""),
        )
    if missing > 0 and failed:
        # Each partition has its own attempts: one that keeps failing must not use up the
        # retries of the others (a failed partition is retried alone).
        by_part: dict[int, list[Execution]] = {}
        for e in failed:
            by_part.setdefault(e.partition_index, []).append(e)
        spent = [p for p in missing_parts if len(by_part.get(p, ())) >= policy.attempts]
        if spent:
            mine = by_part[spent[0]]
            last = max(mine, key=lambda e: e.modify_time)
            which = f"partition {spent[0]} of the job has" if partitions > 1 else "it has"
            return fail_job(
                plan,
                view,
                f"Job failed because {which} been retried too many times ({len(mine)} "
                f"failed executions of {policy.attempts} allowed); last error: execution "
                f"{last.id} on node {last.node_id}: {last.compute_message}",
                ExecutionFailed,
                now,
                code=last.compute_details.get(ERROR_CODE, ""),
            )
        retry_at = policy.retry_time(failed)
        if now < retry_at:
            # Back off before the next attempt; the delayed evaluation places it.
            plan.new_evaluations.append(later(job, retry_at, now, TriggeredBy.EXEC_FAILURE))
            missing = 0
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
        suitable = [r for r in ranks if r.suitable]
        placed = suitable[:missing]
        # Pre-approved (no approval hook to ask): the node bids and starts in one round.
        desired_new = D.RUNNING if settings.pre_approve else D.PENDING
        for r, partition in zip(placed, missing_parts, strict=False):
            plan.new_executions.append(
                new_execution(
                    job, r.node.info.node_id, evaluation, desired_new, now, partition=partition
                )
            )
        if (
            len(placed) < missing
            and not wait_for_nodes(
                plan,
                job,
                ranks,
                now=now,
                settings=settings,
                settling_until=settling_until,
                nodes_needed=partitions,
                idle=not active and not placed,
            )
            and len(placed) + len(active) < desired
        ):
            # Some capacity exists but never enough for Count: fail instead of hanging.
            message = queue_expired(queue_timeout_of(job, settings)) + not_enough_nodes(
                job, missing, ranks, failures
            )
            if failed and all(r.obstacle == FAILED_HERE for r in ranks):
                # The job failed on every node: more nodes would not help, the job itself
                # needs fixing. Say so, with its own error.
                last = max(failed, key=lambda e: e.modify_time)
                return fail_job(
                    plan,
                    view,
                    message,
                    ExecutionFailed,
                    now,
                    code=last.compute_details.get(ERROR_CODE, ""),
                    hint=last.compute_details.get(HINT, "") or FAILED_ON_EVERY_NODE,
                )
            return fail(message)

    # Running once a node took it: a pre-approved ask the node has not answered yet does not
    # count (it may decline), so the job's states come as in two rounds.
    if job.state in (JobStateType.PENDING, JobStateType.QUEUED) and (
        approved
        or any(e.desired_state == D.RUNNING and e.compute_state not in ASKED for e in active)
    ):
        plan.new_job_state = JobStateType.RUNNING
        plan.job_event = event("Running", "State Update", now)
    return plan
