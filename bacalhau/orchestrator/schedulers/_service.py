"""Service jobs: ``Count`` long-running replicas.

Replica ``i`` is the execution with partition index ``i``. Each replica is placed through a
bidding round (like a batch partition); one that ends, even successfully, is restarted after
a backoff that grows with its failures (capped by the job's ``Reschedule.MaxDelay``); one
whose node is lost is moved to another node at once. A service never completes by itself and
has no TotalTimeout.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from bacalhau._wall_steps import elapsed_ns
from bacalhau.errors import NotEnoughNodes
from bacalhau.models import (
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeState,
    TriggeredBy,
)
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import Placed, rank_nodes
from bacalhau.orchestrator._retries import own_failures, retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._waiting import waiting_reason
from bacalhau.orchestrator.schedulers._long_running import ended, ranking_view, restart_time
from bacalhau.orchestrator.schedulers._shared import (
    AFTER_GRACE_NS,
    approve_bids,
    event,
    fail_job,
    fail_lost,
    later,
    look_again_after_grace,
    mark_running,
    new_execution,
    not_enough_nodes,
    queue_expired,
    queue_room_left,
    queue_waiting,
    stop,
)

__all__ = ["schedule_service"]

D = ExecutionDesiredStateType
E = ExecutionStateType


def schedule_service(
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
    """Keep ``Count`` replicas running: approve their bids, restart the ones that ended."""
    plan = Plan(job=job, evaluation=evaluation)
    view = fail_lost(executions, nodes, plan, now, settings, settling_until=settling_until)
    replicas = max(job.count, 1)

    # One live execution per replica: approve the oldest bid of a replica not yet running.
    running = {e.partition_index for e in view if e.is_active() and e.desired_state == D.RUNNING}

    def take(ex: Execution) -> str:
        if ex.partition_index in running or ex.partition_index >= replicas:
            return "the replica is already running"
        running.add(ex.partition_index)
        return ""

    approved, stopped = approve_bids(view, nodes, plan, now, take)
    live: dict[int, Execution] = {}
    for ex in sorted(view, key=lambda e: e.create_time):
        if not ex.is_active() or ex.id in stopped or ex.desired_state == D.STOPPED:
            continue
        if ex.partition_index in live or ex.partition_index >= replicas:
            plan.changes.append(stop(ex, "more executions than replicas", now))
            continue
        live[ex.partition_index] = ex

    policy = retry_policy(job, settings)
    due: list[int] = []
    #: Replicas waiting out their restart backoff: (when they restart, their past runs).
    backing_off: list[tuple[int, list[Execution]]] = []
    for replica in range(replicas):
        if replica in live:
            continue
        past = [e for e in view if e.partition_index == replica]
        at = restart_time(policy, past)
        if now < at:
            backing_off.append((at, past))
        else:
            due.append(replica)
    next_look = min((at for at, _ in backing_off), default=0)
    if next_look:
        plan.new_evaluations.append(later(job, next_look, now, TriggeredBy.EXEC_FAILURE))
        if job.state == JobStateType.RUNNING:
            reason = _restarting(backing_off, replicas)
            _say(plan, job, reason, f"Replica restarting: {reason}", now)

    if due:
        ranks = rank_nodes(
            job,
            nodes,
            ranking_view(view),
            rng=rng,
            attempts_per_node=2**31,
            placed=in_flight,
            min_reputation=settings.min_reputation,
            now=now,
            queue_room=queue_room_left(job, now),
        )
        suitable = [r for r in ranks if r.suitable]
        for r, replica in zip(suitable, due, strict=False):
            plan.new_executions.append(
                new_execution(
                    job, r.node.info.node_id, evaluation, D.PENDING, now, partition=replica
                )
            )
        short = len(due) - len(suitable)
        # Nodes only full for now free room by themselves: the job waits for them.
        passing = any(
            r.obstacle is not None and r.obstacle.passing for r in ranks if not r.suitable
        )
        if short > 0:
            if (
                not view
                and now >= settling_until
                and not job.task.timeouts.queue_timeout
                and not passing
            ):
                # The first placement finds too few nodes that ever could: say so now
                # rather than hang.
                return fail_job(
                    plan, view, not_enough_nodes(job, replicas, ranks, []), NotEnoughNodes, now
                )
            idle = not live and not plan.new_executions
            own_timeout = job.task.timeouts.queue_timeout * 1_000_000_000
            waited = elapsed_ns(job.started_ns(), now)
            never_ran = idle and not any(e.compute_state in _RAN for e in view)
            if never_ran and own_timeout and waited >= own_timeout and now >= settling_until:
                # No node ever took it and its QueueTimeout has passed: it fails as a batch
                # job does (Bacalhau's scheduler fails both). A service that has run and lacks
                # a replica goes on waiting for a node.
                message = queue_expired(job.task.timeouts.queue_timeout) + not_enough_nodes(
                    job, replicas, ranks, []
                )
                return fail_job(plan, view, message, NotEnoughNodes, now)
            if now < settling_until:
                look_again_after_grace(plan, now, settling_until)
            wait = now + int(settings.queue_backoff * 1_000_000_000)
            if never_ran and own_timeout:
                # Look again right when the QueueTimeout passes, to fail on time.
                wait = min(wait, now + own_timeout - waited + AFTER_GRACE_NS)
            plan.new_evaluations.append(later(job, wait, now, TriggeredBy.JOB_QUEUE))
            if idle:
                queue_waiting(plan, job, ranks, now)
            elif job.state == JobStateType.RUNNING:
                # Running, but short of replicas: say which wait, and why.
                reason = f"{short} of {replicas} replicas " + waiting_reason(job, ranks)
                _say(plan, job, reason, f"Replica waiting: {reason}", now)
    elif not next_look and job.state == JobStateType.RUNNING and _SHORT.match(job.state_message):
        _say(plan, job, "", f"All {replicas} replicas placed", now)
    if approved or any(e.desired_state == D.RUNNING for e in live.values()):
        mark_running(plan, job, now)
    return plan


#: States of an execution a node took (it ran, or set out to).
_RAN = frozenset({E.BID_ACCEPTED, E.RUNNING, E.PUBLISHING, E.COMPLETED, E.FAILED})

#: How the message of a running service short of replicas begins ("1 of 3 replicas ...").
_SHORT = re.compile(r"\d+ of \d+ replicas ")


def _restarting(backing_off: list[tuple[int, list[Execution]]], replicas: int) -> str:
    """What a running service says while replicas wait out their restart backoff: how many,
    the soonest one's backoff and failures (the same words at every pass of one wait)."""
    at, past = min(backing_off, key=lambda b: b[0])
    failures = own_failures(ended(past))
    last = max((e.modify_time for e in failures), default=at)
    backoff = max(0, at - last) / 1e9
    many = "failure" if len(failures) == 1 else "failures"
    return (
        f"{len(backing_off)} of {replicas} replicas restarting after a backoff of "
        f"{backoff:.0f}s, following {len(failures)} {many}"
    )


def _say(plan: Plan, job: Job, message: str, told: str, now: int) -> None:
    """Record ``message`` as the running job's (its history tells ``told``), once."""
    if job.state_message.split("\n", 1)[0] != message:
        plan.new_job_state = JobStateType.RUNNING
        plan.job_message = message
        plan.job_event = event(told, "Queueing", now)
