"""Ops jobs: run once on every matching node, without retries; pre-approved unless the
requester's approval hooks decide bids."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bacalhau.errors import ExecutionTimeout, NotEnoughNodes
from bacalhau.models import (
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeState,
)
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import Placed, rank_nodes
from bacalhau.orchestrator._retries import fail_overdue
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator.schedulers._shared import (
    approve_per_node,
    event,
    fail_job,
    fail_lost,
    look_again_after_grace,
    new_execution,
    not_enough_nodes,
    past_total_timeout,
    queue_expired,
    queue_for_nodes,
    queue_timeout_of,
    wait_for_nodes,
)

__all__ = ["schedule_ops"]

D = ExecutionDesiredStateType
E = ExecutionStateType


def schedule_ops(
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
    """Place the job on every matching node at the first evaluation; complete it when none
    is active any more, or fail it if any execution failed."""
    plan = Plan(job=job, evaluation=evaluation)
    view = fail_lost(executions, nodes, plan, now, settings, settling_until=settling_until)
    timed_out = past_total_timeout(job, now)
    if timed_out:
        return fail_job(plan, view, timed_out, ExecutionTimeout, now)
    view = fail_overdue(job, view, plan, now, settings)
    if not view:
        ranks = rank_nodes(
            job,
            nodes,
            view,
            rng=rng,
            placed=in_flight,
            min_reputation=settings.min_reputation,
            now=now,
        )
        suitable = [r for r in ranks if r.suitable]
        if not ranks and now < settling_until:
            look_again_after_grace(plan, now, settling_until)
            if job.state != JobStateType.QUEUED:
                queue_for_nodes(plan, now)
            return plan
        if not suitable:
            # As a batch job does: nodes only full for now (or a QueueTimeout) are waited
            # for; nodes that never could run it fail it at once.
            if wait_for_nodes(
                plan,
                job,
                ranks,
                now=now,
                settings=settings,
                settling_until=settling_until,
                nodes_needed=1,
                idle=True,
            ):
                return plan
            message = queue_expired(queue_timeout_of(job, settings)) + not_enough_nodes(
                job, 1, ranks, []
            )
            return fail_job(plan, view, message, NotEnoughNodes, now)
        desired = D.RUNNING if settings.pre_approve else D.PENDING
        for r in suitable:
            plan.new_executions.append(
                new_execution(job, r.node.info.node_id, evaluation, desired, now)
            )
        plan.new_job_state = JobStateType.RUNNING
        plan.job_event = event("Running", "State Update", now)
        return plan
    approve_per_node(view, nodes, plan, now)
    if any(e.is_active() for e in view):
        return plan
    # A bid the requester turned down (an approval hook said no) is no failure of the job:
    # the job just does not run there. Nothing run at all is one, though.
    ran = [e for e in view if e.compute_state != E.BID_REJECTED]
    failed = [e for e in ran if e.compute_state != E.COMPLETED] or ([] if ran else list(view))
    if failed:
        plan.new_job_state = JobStateType.FAILED
        plan.job_message = (
            f"{len(failed)} of {len(view)} executions failed: {failed[0].compute_message}"
        )
        plan.job_event = event(plan.job_message, "Scheduling", now, IsError="true")
    else:
        plan.new_job_state = JobStateType.COMPLETED
        plan.job_event = event("Job completed", "State Update", now)
    return plan
