"""Retries and timeouts: a job's effective retry policy (its ``Reschedule`` block over the
operator's defaults, exponential capped backoff) and what of a job is overdue. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bacalhau._wall_steps import elapsed_ns
from bacalhau.errors import ExecutionTimeout
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    TriggeredBy,
)
from bacalhau.orchestrator._attempts import QUEUED, is_attempt
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._settings import SchedulerSettings

D = ExecutionDesiredStateType
E = ExecutionStateType

#: Execution detail marking a failure that was the node's (lost), not the job's: it counts
#: as an attempt but does not delay the replacement.
NODE_LOST = "NodeLost"


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
        own = own_failures(failed)
        if not own:
            return 0
        last = max(e.modify_time for e in own)
        return last + int(self.backoff(len(own)) * 1_000_000_000)


def own_failures(failed: Sequence[Execution]) -> list[Execution]:
    """The failures of the job itself among ``failed``: not executions lost with their node,
    nor any that is no attempt (see ``_attempts.is_attempt``)."""
    return [e for e in failed if e.compute_details.get(NODE_LOST) != "true" and is_attempt(e)]


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


def overdue_trigger(
    job: Job, executions: Sequence[Execution], now: int, settings: SchedulerSettings
) -> str:
    """Why a live job must be evaluated now (a ``TriggeredBy`` value), or "" if nothing of
    it is overdue: past its TotalTimeout, an execution past its ExecutionTimeout plus the
    grace, or a queued job past its QueueTimeout. Housekeeping's safety net."""
    if not job.tasks or job.state.is_terminal():
        return ""
    timeouts = job.task.timeouts
    if timeouts.total_timeout and elapsed_ns(job.started_ns(), now) > timeouts.total_timeout * 1e9:
        return TriggeredBy.JOB_TIMEOUT
    if timeouts.execution_timeout:
        overdue_after = (timeouts.execution_timeout + settings.execution_timeout_grace) * 1e9
        for ex in executions:
            if (
                ex.compute_state in (E.BID_ACCEPTED, E.RUNNING)
                and ex.desired_state == D.RUNNING
                and QUEUED not in ex.compute_details
                and elapsed_ns(ex.modify_time, now) > overdue_after
            ):
                return TriggeredBy.EXEC_TIMEOUT
    queue_timeout = timeouts.queue_timeout or settings.default_queue_timeout
    if (
        job.state == JobStateType.QUEUED
        and queue_timeout
        and elapsed_ns(job.started_ns(), now) > queue_timeout * 1e9
    ):
        return TriggeredBy.JOB_QUEUE
    return ""


def fail_overdue(
    job: Job,
    view: Sequence[Execution],
    plan: Plan,
    now: int,
    settings: SchedulerSettings,
) -> list[Execution]:
    """Executions running past their ExecutionTimeout (plus a grace) without a word from
    their node are failed here and cancelled on the node; returns the updated view.

    The node enforces the timeout itself and reports it; this is for a node that went
    silent or lost the report. The clock starts when the bid was accepted, or, for an
    execution its node said waits in its run queue, when the node said it started (the
    wait is no run: while it lasts, nothing is overdue).
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
            and QUEUED not in ex.compute_details
            and elapsed_ns(ex.modify_time, now) > overdue_after
        ):
            msg = f"execution timed out: no result {limit}s after it started (ExecutionTimeout)"
            failure = Failure(ExecutionTimeout.code, True)
            plan.changes.append(
                ExecutionChange(
                    execution_id=ex.id,
                    desired_state=D.STOPPED,
                    desired_message=msg,
                    compute_state=E.FAILED,
                    compute_message=msg,
                    compute_details=failure.details(error=False),
                    cancel_on_node=True,
                    event=Event(
                        message=msg,
                        topic="Execution",
                        timestamp=now,
                        details=replace(failure, hint=ExecutionTimeout.default_hint).details(),
                    ),
                )
            )
            ex = replace(
                ex,
                compute_state=E.FAILED,
                compute_message=msg,
                compute_details=failure.details(error=False),
                modify_time=now,
            )
        out.append(ex)
    return out
