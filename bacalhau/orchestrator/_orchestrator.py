"""The requester role: accepts jobs, runs evaluations, follows every job to a terminal state.

:class:`Orchestrator` implements the endpoint contract of ``_api.OrchestratorAPI`` (used by
the REST and gRPC APIs) and the bprotocol callbacks compute nodes call (OnBidComplete,
OnRunComplete, OnComputeFailure, ReportExecutions). It reads the cluster through the
injected :class:`~bacalhau.orchestrator.NodeView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bacalhau.errors import (
    BacalhauError,
    NodeNotFound,
    NotFound,
    Unavailable,
)
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    ExecutionDesiredStateType,
    ExecutionReport,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    Resources,
    RunResult,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._broker import EvaluationBroker
from bacalhau.orchestrator._callbacks import BidApprovalHook, ExecutionCallbacks
from bacalhau.orchestrator._housekeeping import Housekeeping
from bacalhau.orchestrator._job_control import JobControl
from bacalhau.orchestrator._logs import ExecutionLogs, LogSource
from bacalhau.orchestrator._metrics import CALLBACK_BATCH_ITEMS, SCHEDULING_PASSES
from bacalhau.orchestrator._nodes import NodeAddressBook, NodeDirectory
from bacalhau.orchestrator._plan import records_only_job_state
from bacalhau.orchestrator._planner import ComputeTransport, Planner
from bacalhau.orchestrator._reconcile import NodeReconciler
from bacalhau.orchestrator._result_check import ResultChecker, ResultChecks
from bacalhau.orchestrator._retention import DEFAULT_JOB_RETENTION, JobRetention
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._submission import JobSubmission
from bacalhau.orchestrator._view import NodeView
from bacalhau.orchestrator._waiting import queued_jobs_for_node

log = logging.getLogger(__name__)
D = ExecutionDesiredStateType
E = ExecutionStateType

#: Job types whose next state after an execution report never weighs the nodes' capacity
#: unless the pass also places or waits (``_evaluate_report``): batch (verified jobs aside)
#: and ops jobs, which rank nodes only to place executions.
_SETTLED_IN_PLACE = frozenset({"batch", "ops", ""})
#: The job states such a pass may record in place.
_STATES_SETTLED_IN_PLACE = frozenset({JobStateType.RUNNING, JobStateType.COMPLETED})


class ComputeClient(ComputeTransport, NodeAddressBook, LogSource, Protocol):
    """The transport client the orchestrator needs: send messages, learn addresses, relay
    executions' output."""


class Orchestrator(JobSubmission, JobControl, Housekeeping):
    """The requester node's brain. An async context manager: start it before use."""

    def __init__(
        self,
        *,
        node_info: NodeInfo,
        data_dir: Path,
        compute: ComputeClient,
        node_view: NodeView,
        settings: SchedulerSettings | None = None,
        default_publisher: str = "local",
        default_cpu: str = "500m",
        default_memory: str = "1Gb",
        approval_hooks: Sequence[BidApprovalHook] = (),
        workers: int = 4,
        manual_approval: bool = False,
        report_in_flight: float = 10.0,
        housekeeping_interval: float = 5.0,
        installation_id: str = "",
        job_retention: float = DEFAULT_JOB_RETENTION,
        result_checker: ResultChecker | None = None,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._info = node_info
        self.store = JobStore(data_dir / "jobs.db")
        #: Deletes terminal jobs older than ``job_retention`` seconds (0: keep forever).
        self.retention = JobRetention(self.store, max_age=job_retention)
        self._broker = EvaluationBroker()
        self._settings = settings or SchedulerSettings()
        self._default_publisher = default_publisher
        self._default_cpu = default_cpu
        self._default_memory = default_memory
        self._workers = workers
        self._housekeeping_interval = housekeeping_interval
        self._installation_id = installation_id
        self._rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        self._approvals = ApprovalStore(data_dir / "nodes.db")
        self.nodes = NodeDirectory(
            self_info=node_info,
            view=node_view,
            approvals=self._approvals,
            address_book=compute,
            manual_approval=manual_approval,
            on_node_change=self._node_changed,
            on_capacity_change=self.on_capacity_change,
            on_node_lost=self.on_node_lost,
        )
        self._reconciler = NodeReconciler(
            store=self.store,
            transport=compute,
            enqueue=self._enqueue_new,
            in_flight=report_in_flight,
        )
        self._planner = Planner(
            store=self.store,
            transport=compute,
            enqueue=self._broker.enqueue,
            new_failure_eval=lambda job, by: self._new_eval(job, by),
        )
        # Verified replicas' published results are checked against their claimed CIDs.
        self._result_checks = (
            ResultChecks(store=self.store, checker=result_checker, enqueue=self._enqueue_new)
            if result_checker is not None
            else None
        )
        self._callbacks = ExecutionCallbacks(
            store=self.store,
            planner=self._planner,
            nodes=self.nodes,
            hooks=approval_hooks,
            enqueue=self._evaluate_report,
            result_checks=self._result_checks,
        )
        if self._callbacks.needs_approval:
            # The requester's hooks decide every bid: no job type goes out pre-approved.
            self._settings = dataclasses.replace(self._settings, pre_approve=False)
        self._tasks: list[asyncio.Task[None]] = []
        #: New jobs' first messages on their way (see ``_dispatch_submitted``).
        self._dispatching: set[asyncio.Task[None]] = set()
        self._settling_until = 0
        self._logs = ExecutionLogs(jobs=self, source=compute)

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Orchestrator:
        # Nodes that ran before this start may take a while to rejoin: until then the
        # scheduler treats what it does not see as unknown rather than absent.
        grace = int(self._settings.rejoin_grace * 1_000_000_000)
        self._settling_until = now_ns() + grace if grace > 0 else 0
        await self.nodes.__aenter__()
        # Resume: pending evaluations, plus one for every live job so that messages lost
        # in a crash are re-sent.
        for ev in self.store.pending_evaluations():
            self._broker.enqueue(ev)
        for job_id in self.store.jobs_in_states(
            [JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING]
        ):
            job = self.store.get_job(job_id)
            # Bids whose hooks were deciding when the requester stopped are decided again.
            self._callbacks.resume_decisions(self.store.executions_of(job_id))
            if self._result_checks is not None:
                self._result_checks.resume(self.store.executions_of(job_id))
            self._enqueue_new(job, TriggeredBy.EXEC_UPDATE)
        for i in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"eval-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks.append(asyncio.create_task(self.retention.run(), name="retention"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [*self._tasks, *self._dispatching]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._broker.close()
        if self._result_checks is not None:
            await self._result_checks.aclose()
        await self._callbacks.aclose()
        await self._planner.close()
        await self.nodes.__aexit__(None, None, None)
        self._approvals.close()
        self.store.close()

    # -- evaluations --------------------------------------------------------------------

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

    async def _node_changed(self, node_id: str) -> None:
        on_node = set(self.store.active_jobs_on_node(node_id))
        for job_id in on_node:
            self._enqueue_new(self.store.get_job(job_id), TriggeredBy.NODE_UPDATE)
        # Daemon jobs run on every matching node, including one that just joined.
        for job_id in self.store.jobs_in_states([JobStateType.QUEUED, JobStateType.RUNNING]):
            job = self.store.get_job(job_id)
            if job.type == "daemon" and job_id not in on_node:
                self._enqueue_new(job, TriggeredBy.NODE_UPDATE)
        # A node (re)joining or approved may unblock queued jobs.
        await self.on_capacity_change(node_id)

    async def on_capacity_change(self, node_id: str) -> int:
        """A compute node joined, was approved, reported more room, or ended an execution:
        re-evaluate the queued jobs it may now take, highest priority then oldest first,
        bounded by what it can take (no thundering herd). Returns how many were
        re-evaluated. The node view calls this; so do the execution callbacks."""
        # Most calls (every execution that ends) find nothing queued: answer that from the
        # state index before building the node list, which costs more.
        queued_ids = self.store.jobs_in_states([JobStateType.QUEUED])
        if not queued_ids:
            return 0
        node = next((n for n in self.nodes.compute_nodes() if n.info.node_id == node_id), None)
        if node is None:
            return 0
        queued = [self.store.get_job(j) for j in queued_ids]
        picked = queued_jobs_for_node(queued, node, limit=self._settings.requeue_per_change)
        for job in picked:
            self._enqueue_new(job, TriggeredBy.NODE_UPDATE)
        return len(picked)

    # -- endpoint (OrchestratorAPI) ----------------------------------------------------

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        with contextlib.suppress(NodeNotFound):  # update() reports it
            node_id = self.nodes.get(node_id).info.node_id  # a unique prefix names one node
        ok, err = self.nodes.update(node_id, action, message)
        if ok:
            # Approval may unblock queued jobs; rejection must turn away bids awaiting approval.
            await self._node_changed(node_id)
        return ok, err

    # -- bprotocol callbacks (compute -> requester) -----------------------------------

    async def on_bid_complete(self, result: BidResult) -> None:
        await self._callbacks.on_bid_complete(result)

    async def on_run_complete(self, result: RunResult) -> None:
        held = self._held(result.execution_id, result.node_id)
        await self._callbacks.on_run_complete(result)
        await self._execution_ended(result.node_id, held)

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
        await self._execution_ended(failure.node_id, held)

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
        with self.store.transaction():
            for i, callback in enumerate(callbacks):
                try:
                    with self.store.transaction():
                        if isinstance(callback, BidResult):
                            await self.on_bid_complete(callback)
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

    async def _execution_ended(self, node_id: str, held: Resources | None) -> None:
        """What the execution held is free on its node (before the node's next report
        says so): queued jobs may fit there now."""
        if held is not None:
            self.nodes.release(node_id, held)
            await self.on_capacity_change(node_id)

    async def report_executions(self, report: ExecutionReport) -> None:
        """A compute node lists the executions it holds (after a restart of either side,
        when it was declared dead, and now and then): fail what it lost, cancel on it what
        was stopped meanwhile (see :class:`NodeReconciler`)."""
        await self._reconciler.reconcile(report.node_id, report.execution_ids)

    async def on_node_lost(self, node_id: str, silent_for: float = 0.0) -> None:
        """The one entry point for "this node is dead" (declared dead by gossip, or it left):
        every job with work on it is evaluated, and the scheduler fails that work as
        ``NodeLost`` and places replacements within the job's retry policy. The node is
        usable again once it publishes a newer record; its execution report then makes this
        requester cancel what was replaced (see :class:`NodeReconciler`)."""
        self.nodes.mark_lost(node_id)
        jobs = self.store.active_jobs_on_node(node_id)
        log.warning(
            "node %s lost (last known alive %.1fs ago): re-scheduling %d job(s)",
            node_id,
            silent_for,
            len(jobs),
        )
        for job_id in jobs:
            self._enqueue_new(self.store.get_job(job_id), TriggeredBy.NODE_UPDATE)
