"""The operator's job defaults (Bacalhau's ``JobDefaults``), applied to every new job.

:func:`apply_job_defaults` fills what a job leaves unset from its type's defaults, as
Bacalhau's requester does before it validates a job; :class:`DefaultingOrchestrator` is the
orchestrator doing so on every submission (REST and gRPC alike), before its own built-in
defaults (CPU 500m, memory 1Gb, the default publisher) fill what is still unset.
"""

from __future__ import annotations

from typing import Any

from bacalhau.config import JobDefaults
from bacalhau.models import Job, SpecConfig
from bacalhau.orchestrator import JobDiff, Orchestrator, SubmitResult


def apply_job_defaults(job: Job, defaults: JobDefaults) -> None:
    """Fill ``job``'s unset priority, task resources, publisher and timeouts (the last two
    for batch and ops jobs, which end) from the defaults of its type, in place."""
    of_type = defaults.for_type(job.type.strip())
    if of_type is None:
        return  # no type, or one Bacalhau does not name: validation says so
    if job.priority == 0:
        job.priority = of_type.priority
    for task in job.tasks:
        resources = task.resources
        resources.cpu = resources.cpu or of_type.cpu
        resources.memory = resources.memory or of_type.memory
        resources.disk = resources.disk or of_type.disk
        resources.gpu = resources.gpu or of_type.gpu
        if task.publisher.is_empty() and of_type.publisher_type:
            task.publisher = SpecConfig(
                type=of_type.publisher_type, params=dict(of_type.publisher_params)
            )
        # Only an unset (0) timeout is filled: a negative one stays for validation to
        # refuse, naming it (Bacalhau fills it over, hiding the job's mistake).
        timeouts = task.timeouts
        if timeouts.execution_timeout == 0:
            timeouts.execution_timeout = int(of_type.execution_timeout)
        if timeouts.total_timeout == 0:
            timeouts.total_timeout = int(of_type.total_timeout)


class DefaultingOrchestrator(Orchestrator):
    """An :class:`Orchestrator` that applies ``job_defaults`` to every job submitted, and to
    every job compared with the one of its name (so a diff shows only what the user changed)."""

    def __init__(self, *, job_defaults: JobDefaults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._job_defaults = job_defaults

    async def submit_job(
        self,
        job: Job,
        *,
        client_meta: dict[str, str] | None = None,
        idempotency_token: str = "",
        handed_over: bool = False,
        force: bool = False,
        update_named: bool = True,
    ) -> SubmitResult:
        apply_job_defaults(job, self._job_defaults)
        return await super().submit_job(
            job,
            client_meta=client_meta,
            idempotency_token=idempotency_token,
            handed_over=handed_over,
            force=force,
            update_named=update_named,
        )

    async def diff_job(self, job: Job) -> JobDiff:
        apply_job_defaults(job, self._job_defaults)
        return await super().diff_job(job)
