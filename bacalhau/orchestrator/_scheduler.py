"""Scheduling's entry point: a pure function from (job, executions, nodes, now) to a
:class:`Plan`, dispatching on the job type through the registry in ``schedulers/``.

No I/O happens here, so the whole decision logic is testable with plain values (the harness
in the tests records plans instead of mocking a store or a network).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bacalhau.models import Evaluation, Execution, ExecutionDesiredStateType, Job, NodeState
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import Placed
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator.schedulers import SCHEDULERS, node_lost_message, stop, stop_all

__all__ = ["SchedulerSettings", "node_lost_message", "schedule"]

D = ExecutionDesiredStateType
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
    in_flight: Mapping[str, Placed] | None = None,
) -> Plan:
    """Decide the next step for ``job`` with the scheduler of its type.

    Until ``settling_until`` (ns; the requester started recently) the node view may be
    incomplete: a node not heard from is unknown, not gone, so its executions are not failed,
    and a job that lacks nodes waits for them to join instead of failing; the job is
    evaluated again when the grace ends (and whenever a node joins). ``in_flight`` is what
    this requester has placed per node and not seen end (see :func:`rank_nodes`).
    """
    if job.state.is_terminal():
        # Whatever the type: a finished job's remaining executions are stopped.
        return stop_all(job, executions, evaluation, now)
    # A rerun made a new version: only its executions count; earlier ones still active
    # are stopped.
    current = [e for e in executions if e.job_version == job.version]
    superseded = [
        e
        for e in executions
        if e.job_version != job.version and e.is_active() and e.desired_state != D.STOPPED
    ]
    # Jobs stored before a type was required are batch jobs.
    scheduler = SCHEDULERS.get(job.type or "batch", SCHEDULERS["batch"])
    plan = scheduler(
        job,
        current,
        nodes,
        evaluation,
        now=now,
        settings=settings,
        rng=rng,
        settling_until=settling_until,
        in_flight=in_flight,
    )
    plan.changes += [
        stop(e, f"superseded by version {job.version} of the job", now) for e in superseded
    ]
    return plan
