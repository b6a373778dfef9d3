"""Compute nodes' reports on their executions (the bprotocol callbacks OnBidComplete,
OnRunComplete, OnComputeFailure, their batches, and ReportExecutions), and the scheduling pass
that follows a report, made in place when it only records the job's next state."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from bacalhau.errors import BacalhauError, NotFound, Unavailable
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    ExecutionReport,
    ExecutionStateType,
    Job,
    JobStateType,
    Resources,
    RunResult,
)
from bacalhau.orchestrator._callbacks import ExecutionCallbacks
from bacalhau.orchestrator._metrics import CALLBACK_BATCH_ITEMS, SCHEDULING_PASSES
from bacalhau.orchestrator._node_events import NodeEvents
from bacalhau.orchestrator._plan import records_only_job_state
from bacalhau.orchestrator._reconcile import NodeReconciler

log = logging.getLogger(__name__)
E = ExecutionStateType

#: Job types whose next state after an execution report never weighs the nodes' capacity
#: unless the pass also places or waits (``_evaluate_report``): batch (verified jobs aside)
#: and ops jobs, which rank nodes only to place executions.
_SETTLED_IN_PLACE = frozenset({"batch", "ops", ""})
#: The job states such a pass may record in place.
_STATES_SETTLED_IN_PLACE = frozenset({JobStateType.RUNNING, JobStateType.COMPLETED})


class ExecutionReports(NodeEvents):
    """Applies compute nodes' reports on executions and evaluates their jobs after them."""

    _callbacks: ExecutionCallbacks
    _reconciler: NodeReconciler

    # -- bprotocol callbacks (compute -> requester) -----------------------------------

    async def on_bid_complete(self, result: BidResult, *, evaluate: bool = True) -> None:
        await self._callbacks.on_bid_complete(result, evaluate=evaluate)

    async def on_run_complete(self, result: RunResult) -> None:
        held = self._held(result.execution_id, result.node_id)
        await self._callbacks.on_run_complete(result)
        await self._execution_ended(result.node_id, held, result.record_version)

    async def on_refused_run_result(self, sender: str, execution_id: str, reason: str) -> None:
        """The transport refused a run result that node ``sender`` delivered (see
        :meth:`ExecutionCallbacks.on_refused_run_result`)."""
        held = self._held(execution_id, sender) if execution_id else None
        await self._callbacks.on_refused_run_result(sender, execution_id, reason)
        if held is not None and self._held(execution_id, sender) is None:
            await self._execution_ended(sender, held)  # its replica was failed

    async def on_compute_failure(self, failure: ComputeFailure) -> None:
        held = self._held(failure.execution_id, failure.node_id)
        await self._callbacks.on_compute_failure(failure)
        await self._execution_ended(failure.node_id, held, failure.record_version)

    async def on_callbacks(
        self, callbacks: Sequence[BidResult | RunResult | ComputeFailure]
    ) -> list[BaseException | None]:
        """A node's batch of callbacks, applied in their order by the methods above, in one
        store transaction (one commit for the batch), each in its own savepoint: an item
        that raises is undone alone and its error is its outcome (None: applied). After a
        retryable failure the rest are not applied (and fail retryably), so the node sends
        them again in their order. The methods above do not suspend, so no other task's
        writes interleave with the batch's."""
        outcomes: list[BaseException | None] = []
        # A short run's bid and end arrive together (the answer to a pre-approved ask):
        # one scheduling pass after the end serves both, as the pass after the bid would
        # only find the job Running, which the bid itself records.
        ended_at = {
            c.execution_id: i for i, c in enumerate(callbacks) if not isinstance(c, BidResult)
        }
        with self.store.transaction():
            for i, callback in enumerate(callbacks):
                try:
                    with self.store.transaction():
                        if isinstance(callback, BidResult):
                            ends_later = ended_at.get(callback.execution_id, -1) > i
                            await self.on_bid_complete(callback, evaluate=not ends_later)
                        elif isinstance(callback, RunResult):
                            await self.on_run_complete(callback)
                        else:
                            await self.on_compute_failure(callback)
                except Exception as err:
                    outcomes.append(err)
                    if isinstance(err, BacalhauError) and err.retryable:
                        later = Unavailable(
                            "not applied: an earlier callback of the batch must arrive first",
                            component="Orchestrator",
                        )
                        outcomes.extend(later for _ in callbacks[i + 1 :])
                        break
                else:
                    outcomes.append(None)
        CALLBACK_BATCH_ITEMS.observe(len(callbacks))
        return outcomes

    def _held(self, execution_id: str, node_id: str) -> Resources | None:
        """What an execution holds on its node while it runs there (None: nothing)."""
        with contextlib.suppress(NotFound):
            ex = self.store.get_execution(execution_id)
            if ex.node_id == node_id and ex.compute_state in (E.BID_ACCEPTED, E.RUNNING):
                return ex.allocated
        return None

    async def _execution_ended(
        self, node_id: str, held: Resources | None, record_version: int = 0
    ) -> None:
        """What the execution held is free on its node (before a record of the node says
        so; ``record_version``, when the node said it, is its record's version at the end):
        queued jobs may fit there now."""
        if held is not None:
            self.nodes.release(node_id, held, record_version=record_version)
            await self.on_capacity_change(node_id)

    async def report_executions(self, report: ExecutionReport) -> None:
        """A compute node lists the executions it holds (after a restart of either side,
        when it was declared dead, and now and then): fail what it lost, cancel on it what
        was stopped meanwhile (see :class:`NodeReconciler`)."""
        await self._reconciler.reconcile(report.node_id, report.execution_ids)
        self.queue_moves.note(report.node_id, report.queued, report.execution_ids)

    def _evaluate_report(self, job: Job, triggered_by: str) -> None:
        """The scheduling pass that follows a node's report on one of ``job``'s executions.

        When it would only record the job's next state (Running once a bid was accepted,
        Completed once the last execution completed) or nothing at all, it is made at once,
        in the report's own transaction: the plan an evaluation would store, without the
        evaluation (its row, its queueing and a commit of its own). Anything else (a
        placement, a stop, a timer, a failure), an evaluation of the job already waiting,
        or a job type whose next state may weigh the nodes' capacity, which the report's
        own end frees only after it, goes through an evaluation as before.
        """
        in_place = job.type in _SETTLED_IN_PLACE and not job.verified
        if in_place and not self._broker.is_waiting(job.id):
            ev = self._new_eval(job, triggered_by)
            try:
                plan = self._plan(job, ev)
                if records_only_job_state(plan, _STATES_SETTLED_IN_PLACE):
                    with self.store.transaction():
                        self._planner.apply(plan)
                    SCHEDULING_PASSES.labels(path="in_place").inc()
                    return
            except Exception:
                log.exception("scheduling job %s in place failed; evaluating it", job.id)
        self._enqueue_new(job, triggered_by)
