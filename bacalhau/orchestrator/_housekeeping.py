"""The orchestrator's housekeeping: the periodic safety net behind every timer."""

from __future__ import annotations

import asyncio
import logging

from bacalhau import _wall_steps as wall_steps
from bacalhau.models import JobStateType, TriggeredBy, now_ns
from bacalhau.orchestrator._evaluations import EvaluationRunner
from bacalhau.orchestrator._retries import overdue_trigger

log = logging.getLogger(__name__)


class Housekeeping(EvaluationRunner):
    """Now and then, evaluates what is overdue or stuck (see :meth:`_evaluate_overdue`)."""

    _housekeeping_interval: float

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self._housekeeping_interval)
            try:
                # A look at the wall clock even with nothing to check: a step is told apart
                # from the time between two looks (see bacalhau._wall_steps).
                wall_steps.look()
                self._evaluate_overdue(now_ns())
            except Exception:
                log.exception("housekeeping failed")

    def _evaluate_overdue(self, now: int) -> None:
        """The safety net behind every timer: evaluate jobs past a timeout, re-queue
        evaluations that should have run long ago, and look at live jobs with nothing in
        flight (no active execution, no pending evaluation)."""
        pending = self.store.pending_evaluations()
        lost_before = now - int(max(10.0, 2 * self._housekeeping_interval) * 1_000_000_000)
        for ev in pending:
            if max(ev.wait_until, ev.create_time) < lost_before:
                self._broker.enqueue(ev)
        waiting = {ev.job_id for ev in pending}
        for job_id in self.store.jobs_in_states(
            [JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING]
        ):
            job = self.store.get_job(job_id)
            executions = self.store.executions_of(job_id)
            trigger = overdue_trigger(job, executions, now, self._settings)
            if not trigger and job_id not in waiting and not any(e.is_active() for e in executions):
                trigger = TriggeredBy.JOB_QUEUE  # stuck: nothing would ever look at it
            if trigger:
                self._enqueue_new(job, trigger)
