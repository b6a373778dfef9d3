"""Daemon jobs: one long-running execution on every matching node, including nodes that join
later, until the job is stopped.

Every evaluation (a node joined, was lost, an execution ended) adds an execution on each
suitable node that has none (pre-approved unless the requester's approval hooks decide
bids); an execution that ended is restarted on its node
after a backoff. A daemon job never completes by itself and has no TotalTimeout.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bacalhau.models import (
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    Job,
    NodeState,
    TriggeredBy,
)
from bacalhau.orchestrator._attempts import next_reconsideration
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import Placed, rank_nodes
from bacalhau.orchestrator._retries import retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator.schedulers._long_running import ranking_view, restart_time
from bacalhau.orchestrator.schedulers._shared import (
    approve_per_node,
    fail_lost,
    later,
    look_again_after_grace,
    mark_running,
    new_execution,
    queue_waiting,
)

__all__ = ["schedule_daemon"]

D = ExecutionDesiredStateType


def schedule_daemon(
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
    """Start the job on every suitable node that lacks a live execution of it."""
    plan = Plan(job=job, evaluation=evaluation)
    view = fail_lost(executions, nodes, plan, now, settings, settling_until=settling_until)
    approved, stopped = approve_per_node(view, nodes, plan, now)
    live = [
        e for e in view if e.is_active() and e.desired_state != D.STOPPED and e.id not in stopped
    ]
    policy = retry_policy(job, settings)
    # No attempts-per-node limit: a daemon belongs on every node, however often it ended.
    ranks = rank_nodes(
        job,
        nodes,
        ranking_view(view),
        rng=rng,
        attempts_per_node=2**31,
        placed=in_flight,
        min_reputation=settings.min_reputation,
        now=now,
    )
    placed = 0
    next_look = 0
    for r in ranks:
        if not r.suitable:
            continue
        node_id = r.node.info.node_id
        at = restart_time(policy, [e for e in view if e.node_id == node_id])
        if now < at:
            next_look = min(next_look or at, at)
            continue
        desired = D.RUNNING if settings.pre_approve else D.PENDING
        plan.new_executions.append(new_execution(job, node_id, evaluation, desired, now))
        placed += 1
    # A node whose bid the approval hooks turned down is asked again after a pause.
    again = next_reconsideration(ranking_view(view), now)
    if again:
        next_look = min(next_look or again, again)
    if next_look:
        plan.new_evaluations.append(later(job, next_look, now, TriggeredBy.EXEC_FAILURE))
    # Nodes that are only full free capacity by themselves and say so; look again then.
    if any(r.obstacle is not None and r.obstacle.passing for r in ranks if not r.suitable):
        wait = now + int(settings.queue_backoff_max * 1_000_000_000)
        plan.new_evaluations.append(later(job, wait, now, TriggeredBy.JOB_QUEUE))
    if (
        (placed and settings.pre_approve)
        or approved
        or any(e.desired_state == D.RUNNING for e in live)
    ):
        mark_running(plan, job, now)
    elif not live and not placed:
        # No node matches yet: wait for one to join (joining re-evaluates daemon jobs).
        if now < settling_until:
            look_again_after_grace(plan, now, settling_until)
        queue_waiting(plan, job, ranks, now)
    return plan
