"""The compute node's side of bprotocol: asks, acceptances, rejections, cancels, withdrawals.

Every handler answers at once (the transport's ack); bidding and running happen in tasks the
endpoint owns. The one exception: a pre-approved ask that allows an answer linger is answered
once its bid is decided and its run has ended, or the linger is over, with the execution's
callbacks in the answer (see :class:`CallbackOutbox`): a short execution then costs the
requester one round trip, and the node no call of its own.

Semantics follow Bacalhau 1.5 (``pkg/compute/bidder.go``):

- ``WaitForApproval=true``: bid; accepted -> ``Created`` + OnBidComplete(accepted), then
  BidAccepted runs it and BidRejected ends it; rejected -> OnBidComplete(rejected, reason).
- ``WaitForApproval=false`` (the requester approved in advance: one round): accepted ->
  ``BidAccepted`` + OnBidComplete(accepted) and run at once, without waiting for
  BidAccepted; rejected -> OnBidComplete(rejected, reason), a declined bid as in two rounds
  (Bacalhau 1.5 sent OnComputeFailure("job rejected: ..."), which the requester counted as a
  failed execution rather than a node that would not take the job).

Only requesters this node trusts may send any of these (:class:`RequesterTrust`); anything
else is refused before it is acted on. An ask's job times are put on this node's clock
(:class:`RequesterClocks`), and a large inline WASM module that came by reference is put back
before bidding (:class:`ModuleResolver`; when it cannot be had, the execution fails).
Accepted executions wait in a local queue until capacity frees (higher priority first). Every
callback goes through the store's outbox, so it reaches the requester even across outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from bacalhau.compute._bidder import Bidder, BidVerdict
from bacalhau.compute._callbacks import OrchestratorCallbacks
from bacalhau.compute._capacity import (
    DEFAULT_JOB_RESOURCES,
    CapacityTracker,
    job_usage,
    queue_deadline,
)
from bacalhau.compute._errors import QueueTimeoutPassed
from bacalhau.compute._events import TOPIC_BIDDING, failure_event, info_event
from bacalhau.compute._installed import installed_names
from bacalhau.compute._metrics import ASK_SECONDS
from bacalhau.compute._modules import ModuleResolver, ModuleSource
from bacalhau.compute._outbox import DEFAULT_LINGER, CallbackOutbox
from bacalhau.compute._pipeline import ExecutionPipeline
from bacalhau.compute._queue import RunQueue
from bacalhau.compute._queue_watch import QueueWatch
from bacalhau.compute._requester_clock import RequesterClocks
from bacalhau.compute._retention import DEFAULT_EXECUTION_RETENTION, ExecutionRetention
from bacalhau.compute._store import ExecutionStore, LocalExecution
from bacalhau.compute._trust import RequesterTrust
from bacalhau.errors import (
    BacalhauError,
    InvalidRequest,
    InvalidTransition,
    PermissionDenied,
    Unavailable,
)
from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ComputeNodeInfo,
    LocalExecutionState,
    LogChunk,
    LogRequest,
    Resources,
)

_log = logging.getLogger(__name__)

L = LocalExecutionState

#: Execution IDs name a directory on this node: nothing that could escape it.
_EXECUTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: States in which a repeated BidAccepted changes nothing.
_ALREADY_ACCEPTED = frozenset({L.BID_ACCEPTED, L.RUNNING, L.PUBLISHING, L.COMPLETED})

RESTART_MESSAGE = "node restarted while the execution was running"

#: The longest an ask's answer waits for its execution's callbacks, whatever the ask allows
#: (seconds): a gRPC call held open is cheap, but the requester's view of the bid waits too.
MAX_ANSWER_LINGER = 0.1


class ComputeEndpoint:
    """The compute role: answers the requester and owns the executions' background work.

    Implements the transport's ComputeHandler structurally; an async context manager (start:
    recover from a crash, resume the queue and the outbox; stop: cancel the work in flight,
    failing it so the requester can reschedule, and flush the callbacks briefly).

    Finished executions older than ``retention`` seconds (0: never) are forgotten with their
    files, checked every ``housekeeping_interval`` seconds (:class:`ExecutionRetention`);
    ``published_paths`` names what a publisher keeps on this node for an execution, and
    ``forget_published`` drops what publishers keep elsewhere for forgotten executions.
    ``module_source`` fetches modules that arrive by reference.
    """

    def __init__(
        self,
        *,
        node_id: str,
        store: ExecutionStore,
        bidder: Bidder,
        pipeline: ExecutionPipeline,
        callbacks: OrchestratorCallbacks,
        capacity: CapacityTracker,
        trust: RequesterTrust,
        max_job_requirements: Resources | None = None,
        storage_sources: Collection[str] = (),
        default_usage: Resources = DEFAULT_JOB_RESOURCES,
        callback_retry_for: float = 3600.0,
        callback_initial_backoff: float = 0.1,
        callback_max_backoff: float = 30.0,
        callback_linger: float = DEFAULT_LINGER,
        retention: float = DEFAULT_EXECUTION_RETENTION,
        housekeeping_interval: float = 60.0,
        published_paths: Callable[[str], Iterable[Path]] | None = None,
        forget_published: Callable[[list[str]], object] | None = None,
        module_source: ModuleSource | None = None,
    ) -> None:
        self._node_id = node_id
        self._store = store
        self._bidder = bidder
        self._pipeline = pipeline
        self._capacity = capacity
        self._trust = trust
        self._max_job_requirements = max_job_requirements or capacity.total
        self._storage_sources = list(storage_sources)
        self._default_usage = default_usage
        self._published_paths = published_paths
        self._retention = ExecutionRetention(
            store,
            paths_of=self._paths_of,
            forget=forget_published,
            max_age=retention,
            interval=housekeeping_interval,
        )
        self._modules = ModuleResolver(store=store, source=module_source)
        self._outbox = CallbackOutbox(
            store=store,
            callbacks=callbacks,
            retry_for=callback_retry_for,
            initial_backoff=callback_initial_backoff,
            max_backoff=callback_max_backoff,
            linger=callback_linger,
        )
        self._queue = RunQueue(capacity, self._start_run, self._queue_timed_out)
        self._runs: dict[str, asyncio.Task[LocalExecution]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._bidding: set[str] = set()
        #: Cancels that came while bidding (reason by execution ID): the bid runs nothing.
        self._cancelled_while_bidding: dict[str, str] = {}
        #: Executions whose ask's answer waits for them to end (see ``_ended``).
        self._ends: dict[str, asyncio.Event] = {}
        #: Who asked for each queued or running execution (where its callbacks go).
        self._requester_of: dict[str, str] = {}
        self._queue_watch = QueueWatch(self._queue, self._requester_of)
        self._clocks = RequesterClocks()
        self._started = self._closing = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def store(self) -> ExecutionStore:
        return self._store

    @property
    def trust(self) -> RequesterTrust:
        """The requesters this node obeys."""
        return self._trust

    @property
    def outbox(self) -> CallbackOutbox:
        return self._outbox

    @property
    def queue_watch(self) -> QueueWatch:
        """What waits in the run queue, per requester, and who must hear of it now."""
        return self._queue_watch

    @property
    def retention(self) -> ExecutionRetention:
        """Forgets finished executions past their age, in the background."""
        return self._retention

    @property
    def modules(self) -> ModuleResolver:
        """Puts back modules that came by reference (``fetches`` counts fetches)."""
        return self._modules

    @property
    def running_count(self) -> int:
        return len(self._runs)

    @property
    def queued_count(self) -> int:
        return self._queue.queued_count

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        for record in self._store.recover_interrupted(message=RESTART_MESSAGE):
            what = f"execution {record.id} of job {record.job_id}"
            _log.warning("%s was under way when the node stopped: reported as failed", what)
            await self._pipeline.discard_outputs(record.id)
        self._started = True
        self._outbox.start()
        for record in self._store.executions(states=[L.BID_ACCEPTED]):
            self._enqueue(record)
        self._spawn(self._retention.run(), name="compute-retention")
        self._spawn(self._queue_watch.run(), name="compute-queue-watch")

    async def close(self, *, flush_timeout: float = 2.0) -> None:
        if self._closing:
            return
        self._closing = True
        tasks: list[asyncio.Task[Any]] = [*self._background, *self._runs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pipeline.close()
        await self._outbox.close(flush_timeout=flush_timeout)

    async def __aenter__(self) -> ComputeEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- bprotocol handlers -----------------------------------------------------------------

    async def ask_for_bid(self, source_node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        """Start bidding for an execution; a repeated request for a known one is a no-op.

        A pre-approved ask with an ``answer_linger`` is answered with the execution's
        callbacks: its bid answer, and its run result or failure when it ends within the
        linger (capped at :data:`MAX_ANSWER_LINGER`), instead of by calls of the node's own.
        """
        began = time.perf_counter()
        try:
            return await self._ask_for_bid(source_node_id, request)
        finally:
            ASK_SECONDS.observe(time.perf_counter() - began)

    async def _ask_for_bid(
        self, source_node_id: str, request: AskForBidRequest
    ) -> AskAnswer | None:
        await self._trust.check(source_node_id, "AskForBid")
        self._check_open()
        if request.applied_callbacks:
            self._outbox.applied(source_node_id, request.applied_callbacks)
        request = self._clocks.localize(source_node_id, request)
        execution = request.execution
        if execution.job is None or not execution.job.tasks:
            raise InvalidRequest(f"AskForBid for execution {execution.id} carried no job")
        if not _EXECUTION_ID.fullmatch(execution.id):
            raise InvalidRequest(f"invalid execution ID {execution.id!r}")
        if execution.id in self._bidding or self._store.state(execution.id) is not None:
            _log.debug("duplicate AskForBid for execution %s ignored", execution.id)
            return None
        self._bidding.add(execution.id)
        linger = min(request.answer_linger, MAX_ANSWER_LINGER)
        if request.wait_for_approval or linger <= 0:
            self._spawn(self._bid(source_node_id, request), name=f"bid-{execution.id}")
            return None
        self._outbox.hold(execution.id, new=True)  # (looked up above: not created yet)
        ended = self._ends[execution.id] = asyncio.Event()
        taken = False
        try:
            self._spawn(self._bid(source_node_id, request), name=f"bid-{execution.id}")
            # Until it ends here (declined, failed, run, cancelled) or the linger is over;
            # a cancelled call takes nothing: what was queued stays queued.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(linger):
                    await ended.wait()
            answer = self._outbox.take_answer(source_node_id, execution.id)
            taken = True
            return answer
        finally:
            del self._ends[execution.id]
            self._outbox.release(source_node_id, execution.id, taken=taken)

    def _ended(self, execution_id: str) -> None:
        """The execution will queue no more callbacks: an answer waiting for it may go."""
        ended = self._ends.get(execution_id)
        if ended is not None:
            ended.set()

    async def bid_accepted(self, source_node_id: str, decision: BidDecision) -> None:
        """The requester took our bid: queue the execution to run."""
        await self._trust.check(source_node_id, "BidAccepted")
        self._check_open()
        record = self._owned(source_node_id, decision.execution_id)
        if record.state in _ALREADY_ACCEPTED:
            return
        if record.state is not L.CREATED:
            raise InvalidTransition(
                f"execution {record.id} is {record.state.value} on this node: "
                "it can no longer be accepted"
            )
        record = self._store.transition(
            record, L.BID_ACCEPTED, message=decision.justification or record.message
        )
        self._enqueue(record)

    async def bid_rejected(self, source_node_id: str, decision: BidDecision) -> None:
        """The requester chose another node: forget the bid (stop it if already started)."""
        await self._trust.check(source_node_id, "BidRejected")
        self._check_open()
        record = self._owned(source_node_id, decision.execution_id)
        if record.state.is_terminal():
            return
        reason = decision.justification or "bid rejected by the requester"
        if record.state is L.CREATED:
            self._store.transition(record, L.BID_REJECTED, message=reason)
        else:
            self._cancel(record, reason)

    async def cancel_execution(self, source_node_id: str, request: CancelExecutionRequest) -> None:
        """Stop an execution wherever it is (queued, running, publishing); idempotent."""
        await self._trust.check(source_node_id, "CancelExecution")
        self._check_open()
        record = self._store.find(request.execution_id)
        if record is None:
            if request.execution_id in self._bidding:
                # The ask is still being decided: a pre-approved ask would otherwise start
                # running right after this cancel, which only its next report would stop.
                reason = request.justification or "cancelled by the requester"
                self._cancelled_while_bidding[request.execution_id] = reason
                _log.info("execution %s cancelled while bidding: %s", request.execution_id, reason)
                return
            _log.info("cancel for unknown execution %s ignored", request.execution_id)
            return
        self._check_owner(source_node_id, record)
        if record.state.is_terminal():
            return
        self._cancel(record, request.justification or "cancelled by the requester")

    async def withdraw_queued(
        self, source_node_id: str, request: CancelExecutionRequest
    ) -> str | None:
        """Drop the execution if it still waits in the run queue (it goes elsewhere): None
        when withdrawn, else its state here ("" when unknown)."""
        await self._trust.check(source_node_id, "WithdrawQueued")
        self._check_open()
        record = self._store.find(request.execution_id)
        if record is None:
            return ""
        self._check_owner(source_node_id, record)
        if record.id not in self._queue:
            return record.state.value
        self._cancel(record, request.justification or "withdrawn by the requester")
        return None

    # -- node description -------------------------------------------------------------------

    def stream_logs(self, source_node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        """The execution's stdout and stderr, read from its results directory or, once it
        ended, from the store (see :class:`ExecutionLogs`); only the requester the execution
        belongs to may read them."""
        record = self._owned(source_node_id, request.execution_id)
        store, execution_id, runs = self._store, record.id, self._runs

        def finished() -> bool:
            # Cancelled comes before the workload stops, when an engine may still write its
            # last output (Docker drains the attach stream): the run must have ended too.
            state = store.state(execution_id)
            return (state is None or state.is_terminal()) and execution_id not in runs

        return self._pipeline.logs.chunks(request, finished=finished)

    async def node_info(self) -> ComputeNodeInfo:
        """What this node offers now (published in its gossip record)."""
        return ComputeNodeInfo(
            execution_engines=await installed_names(self._pipeline.executors),
            publishers=await installed_names(self._pipeline.publishers),
            storage_sources=list(self._storage_sources),
            max_capacity=self._capacity.total,
            queue_capacity=self._queue.queued_usage(),
            available_capacity=self._capacity.available(),
            max_job_requirements=self._max_job_requirements,
            running_executions=self._capacity.running_count,
            enqueued_executions=self._queue.queued_count,
        )

    # -- internals --------------------------------------------------------------------------

    async def _bid(self, source_node_id: str, request: AskForBidRequest) -> None:
        execution = request.execution
        try:
            assert execution.job is not None  # checked by ask_for_bid
            try:
                job = await self._modules.resolve(source_node_id, execution.job)
            except BacalhauError as err:
                self._fail_arrival(source_node_id, request, err)
                return
            if job is not execution.job:
                execution = dataclasses.replace(execution, job=job)
                request = dataclasses.replace(request, execution=execution)
            verdict = await self._bidder.bid(job)
            if not verdict.should_bid:
                _log.info("not bidding for execution %s: %s", execution.id, verdict.reason)
            self._record_bid(source_node_id, request, verdict)
        except Exception:
            _log.exception("bidding for execution %s failed", execution.id)
        finally:
            self._bidding.discard(execution.id)
            self._cancelled_while_bidding.pop(execution.id, None)

    def _record_bid(
        self, source_node_id: str, request: AskForBidRequest, verdict: BidVerdict
    ) -> None:
        execution = request.execution
        cancelled = self._cancelled_while_bidding.pop(execution.id, None)
        if cancelled is not None:
            # Kept (so a repeated ask stays a no-op) but never run; the requester has
            # already recorded the stop, so no answer is owed.
            record = self._store.create(execution, requester_id=source_node_id, message=cancelled)
            self._store.transition(record, L.CANCELLED, message=cancelled)
            self._ended(execution.id)
            return
        ids = {"execution_id": execution.id, "job_id": execution.job_id, "node_id": self._node_id}
        # The same answer in both flows; a pre-approved bid is simply not waited on.
        event = info_event(verdict.reason, topic=TOPIC_BIDDING)
        callback = BidResult(**ids, accepted=verdict.should_bid, event=event)
        if not verdict.should_bid:
            state = L.BID_REJECTED
        elif request.wait_for_approval:
            state = L.CREATED
        else:
            state = L.BID_ACCEPTED
        record = self._store.create(
            execution,
            requester_id=source_node_id,
            state=state,
            message=verdict.reason,
            callback=callback,
        )
        self._outbox.kick(source_node_id, execution.id)
        if state is L.BID_ACCEPTED:
            self._enqueue(record)
        elif state is L.BID_REJECTED:
            self._ended(execution.id)

    def _fail_arrival(
        self, source_node_id: str, request: AskForBidRequest, err: BacalhauError
    ) -> None:
        """The ask cannot be bid for (its module cannot be had): record the execution as
        failed and tell the requester why, unless it was cancelled meanwhile."""
        execution = request.execution
        cancelled = self._cancelled_while_bidding.pop(execution.id, None)
        _log.warning("execution %s failed before bidding: %s", execution.id, err)
        record = self._store.create(
            execution, requester_id=source_node_id, message=cancelled or err.message
        )
        if cancelled is not None:
            self._store.transition(record, L.CANCELLED, message=cancelled)
            self._ended(execution.id)
            return
        self._fail_unstarted(record, err)

    def _enqueue(self, record: LocalExecution) -> None:
        self._requester_of[record.id] = record.requester_id
        try:
            usage = job_usage(record.job, defaults=self._default_usage)
            self._queue.submit(
                record.id,
                usage,
                priority=record.job.priority,
                deadline_ns=queue_deadline(record.job),
            )
        except BacalhauError as err:
            self._requester_of.pop(record.id, None)
            self._fail_unstarted(record, err)

    def _queue_timed_out(self, execution_id: str) -> None:
        """Waited in this node's queue past the job's QueueTimeout: failed, retryably (the
        requester may place it where there is room, or fail the job on time)."""
        record = self._store.get(execution_id)
        self._requester_of.pop(execution_id, None)
        timeout = record.job.task.timeouts.queue_timeout
        err = QueueTimeoutPassed(
            f"the job's QueueTimeout of {timeout}s passed while the execution waited in "
            "this node's queue for resources"
        )
        self._fail_unstarted(record, err)

    def _start_run(self, execution_id: str) -> None:
        """Called by the queue once the execution's resources are reserved."""
        task = asyncio.create_task(
            self._pipeline.run(execution_id, on_outcome=self._ended), name=f"run-{execution_id}"
        )
        self._runs[execution_id] = task
        # A done callback, not a ``finally``: it also runs for a task cancelled before it
        # started, so the reservation is always released.
        task.add_done_callback(lambda t: self._run_done(execution_id, t))

    def _run_done(self, execution_id: str, task: asyncio.Task[LocalExecution]) -> None:
        self._runs.pop(execution_id, None)
        if not task.cancelled() and task.exception() is not None:
            _log.error(
                "execution %s ended with an error",
                execution_id,
                exc_info=task.exception(),
            )
        requester_id = self._requester_of.pop(execution_id, None)
        self._ended(execution_id)
        if requester_id is not None:
            # The pipeline queued its outcome's callback.
            self._outbox.kick(requester_id, execution_id)
        if not self._closing:
            self._queue.finished(execution_id)

    def _cancel(self, record: LocalExecution, reason: str) -> None:
        # Recorded first: the pipeline, seeing Cancelled, stops quietly instead of failing.
        self._store.transition(record, L.CANCELLED, message=reason)
        if self._queue.remove(record.id):
            self._requester_of.pop(record.id, None)
            self._ended(record.id)
        task = self._runs.get(record.id)
        if task is not None:
            task.cancel()
        _log.info("execution %s cancelled: %s", record.id, reason)

    def follow_record(self, version: Callable[[], int]) -> None:
        """Stamp each execution's end with the node's gossip record version then (see
        :meth:`ExecutionPipeline.follow_record`)."""
        self._pipeline.follow_record(version)

    def _fail_unstarted(self, record: LocalExecution, err: BacalhauError) -> None:
        failure = ComputeFailure(
            execution_id=record.id,
            job_id=record.job_id,
            node_id=self._node_id,
            event=failure_event(err, topic=TOPIC_BIDDING),
            record_version=self._pipeline.record_version(),
        )
        self._store.transition(record, L.FAILED, message=err.message, callback=failure)
        self._ended(record.id)
        self._outbox.kick(record.requester_id, record.id)

    def _owned(self, source_node_id: str, execution_id: str) -> LocalExecution:
        record = self._store.get(execution_id)
        self._check_owner(source_node_id, record)
        return record

    def _check_owner(self, source_node_id: str, record: LocalExecution) -> None:
        if source_node_id != record.requester_id:
            raise PermissionDenied(
                f"execution {record.id} belongs to requester {record.requester_id}, "
                f"not {source_node_id}",
                component="Compute",
            )

    def _check_open(self) -> None:
        if not self._started or self._closing:
            raise Unavailable("the compute node is not running", component="Compute")

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        # A tracked set rather than a TaskGroup: one execution's failure must never cancel
        # the others, and every task is logged and cancelled on close.
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _paths_of(self, execution_id: str) -> list[Path]:
        """What this node keeps for an execution: its results folder (with its logs), inputs
        a crash left behind, and what publishers keep here."""
        paths = [self._pipeline.results_dir(execution_id), self._pipeline.inputs_dir(execution_id)]
        if self._published_paths is not None:
            paths.extend(self._published_paths(execution_id))
        return paths
