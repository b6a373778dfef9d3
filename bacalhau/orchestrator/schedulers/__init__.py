"""One pure scheduler per job type, registered by type name.

Each is a function of (job, executions, nodes, evaluation, now, settings) returning a
:class:`~bacalhau.orchestrator._plan.Plan`; none does I/O. ``schedule`` (in
``orchestrator/_scheduler.py``) dispatches through :data:`SCHEDULERS`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from bacalhau.models import Evaluation, Execution, Job, NodeState
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._ranking import Placed
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator.schedulers._batch import schedule_batch
from bacalhau.orchestrator.schedulers._daemon import schedule_daemon
from bacalhau.orchestrator.schedulers._ops import schedule_ops
from bacalhau.orchestrator.schedulers._service import schedule_service
from bacalhau.orchestrator.schedulers._shared import node_lost_message, stop, stop_all

__all__ = [
    "SCHEDULERS",
    "JobScheduler",
    "node_lost_message",
    "schedule_batch",
    "schedule_daemon",
    "schedule_ops",
    "schedule_service",
    "stop",
    "stop_all",
]


class JobScheduler(Protocol):
    """The scheduler of one job type: a pure function to a plan."""

    def __call__(
        self,
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
    ) -> Plan: ...


#: The scheduler of each job type (``Job.Type``); validation refuses any other type.
SCHEDULERS: Mapping[str, JobScheduler] = {
    "batch": schedule_batch,
    "ops": schedule_ops,
    "daemon": schedule_daemon,
    "service": schedule_service,
}
