"""The requester role: accepts jobs, runs evaluations, follows every job to a terminal state.

:class:`Orchestrator` implements the endpoint contract of ``_api.OrchestratorAPI`` (used by
the REST and gRPC APIs) and the bprotocol callbacks compute nodes call (OnBidComplete,
OnRunComplete, OnComputeFailure, ReportExecutions). It reads the cluster through the
injected :class:`~bacalhau.orchestrator.NodeView`.

This module builds it and runs its lifecycle; its work lives in one part per concern, each a
class it is composed of:

- ``_evaluations``: making, queueing and processing evaluations (the worker loop);
- ``_submission``: new jobs, placed in their submit's own transaction;
- ``_reports``: compute nodes' reports and callbacks, and the pass in place after one;
- ``_node_events``: a node joined, was approved, has room again, or was lost;
- ``_job_control``: stop, rerun, versions;
- ``_queries``: the edges' reads (jobs, executions, history, logs, results, nodes);
- ``_housekeeping``: the periodic safety net behind every timer;
- ``_queue_moves``: work waiting in one node's run queue moved to a node with room.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bacalhau.models import Connection, JobStateType, NodeInfo, TriggeredBy, now_ns
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._broker import EvaluationBroker
from bacalhau.orchestrator._callbacks import BidApprovalHook, ExecutionCallbacks
from bacalhau.orchestrator._housekeeping import Housekeeping
from bacalhau.orchestrator._job_control import JobControl
from bacalhau.orchestrator._logs import ExecutionLogs, LogSource
from bacalhau.orchestrator._managed import ManagedResultBucket
from bacalhau.orchestrator._metrics import ACTIVE_JOBS
from bacalhau.orchestrator._nodes import NodeAddressBook, NodeDirectory
from bacalhau.orchestrator._planner import ComputeTransport, Planner
from bacalhau.orchestrator._queue_moves import QueueMoves
from bacalhau.orchestrator._reconcile import REPORT_IN_FLIGHT, NodeReconciler
from bacalhau.orchestrator._reports import ExecutionReports
from bacalhau.orchestrator._result_check import ResultChecker, ResultChecks
from bacalhau.orchestrator._retention import DEFAULT_JOB_RETENTION, JobRetention
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._submission import JobSubmission
from bacalhau.orchestrator._view import NodeView


class ComputeClient(ComputeTransport, NodeAddressBook, LogSource, Protocol):
    """The transport client the orchestrator needs: send messages, learn addresses, relay
    executions' output."""


class Orchestrator(JobSubmission, ExecutionReports, JobControl, Housekeeping):
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
        report_in_flight: float = REPORT_IN_FLIGHT,
        housekeeping_interval: float = 5.0,
        installation_id: str = "",
        job_retention: float = DEFAULT_JOB_RETENTION,
        result_checker: ResultChecker | None = None,
        managed_bucket: ManagedResultBucket | None = None,
        log_streams_max: int = 0,
        log_streams_per_client_max: int = 0,
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
        #: The bucket of the s3managed publisher (None: jobs naming it are refused).
        self._managed_bucket = managed_bucket
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
            apply_callbacks=self.on_callbacks,
            refused_run_result=self.on_refused_run_result,
            answer_linger=self._settings.answer_linger,
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
        #: Moves work waiting in a node's run queue to a node with room for it now.
        self.queue_moves = QueueMoves(
            store=self.store,
            transport=compute,
            nodes=lambda: list(self._ranked_nodes()),
            settings=self._settings,
            place=self._enqueue_new,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._unwatch: Callable[[], None] = lambda: None
        #: Messages of passes made in place on their way (see ``_dispatch_placed``).
        self._dispatching: set[asyncio.Task[None]] = set()
        self._settling_until = 0
        self._logs = ExecutionLogs(
            jobs=self,
            source=compute,
            reachable=self._node_connected,
            max_streams=log_streams_max,
            max_per_client=log_streams_per_client_max,
        )

    @property
    def log_streams_open(self) -> int:
        """Job log streams relayed now (see ``log_streams_max``)."""
        return self._logs.open_streams

    def _node_connected(self, node_id: str) -> bool:
        node = self.nodes.compute_node(node_id)
        return node is None or node.connection == Connection.CONNECTED

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
        self._tasks.append(asyncio.create_task(self.queue_moves.run(), name="queue-moves"))
        self._unwatch = ACTIVE_JOBS.watch(self._active_jobs)
        return self

    def _active_jobs(self) -> dict[str, int]:
        """How many jobs are in each state not ended (``bacalhau_jobs_active``)."""
        return {
            state.wire: len(self.store.jobs_in_states([state]))
            for state in (JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING)
        }

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
        self._unwatch()
        self.store.close()
