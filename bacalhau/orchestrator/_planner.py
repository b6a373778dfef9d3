"""Applies plans to the store and sends the bprotocol messages they imply.

Persist first, then send: the observed state is moved *before* the message goes out (so a
fast reply can never arrive before the state it answers), and a failed send is recorded as
a failed execution and re-evaluated, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bacalhau.errors import (
    BacalhauError,
    InvalidJobSpec,
    InvalidRequest,
    PermissionDenied,
    RevisionConflict,
)
from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Evaluation,
    EvaluationStatus,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    RunResult,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._answer_groups import AnswerGroups
from bacalhau.orchestrator._attempts import UNREACHED
from bacalhau.orchestrator._metrics import (
    ANSWERED_CALLBACKS,
    DISPATCH_SECONDS,
    GRPC_CALL_SECONDS,
    SCHEDULING_SECONDS,
)
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._store import JobStore

log = logging.getLogger(__name__)
D = ExecutionDesiredStateType
E = ExecutionStateType
#: Where an execution is while its ask is on its way.
_ASKED = frozenset({E.NEW, E.ASK_FOR_BID})


class ComputeTransport(Protocol):
    """How the requester reaches compute nodes (implemented by the transport's client)."""

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        """Send the ask; returns the callbacks the node's answer carried (checked), if any."""
        ...

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None: ...

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None: ...

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None: ...

    async def withdraw_queued(self, node_id: str, request: CancelExecutionRequest) -> str | None:
        """Take an execution back from the node's run queue: None when withdrawn, else its
        state there ("" when unknown)."""
        ...


class SendKind(StrEnum):
    """The bprotocol messages a plan may imply; the value is the metrics' method label."""

    ASK = "AskForBid"
    #: An ask approved in advance: the node bids and starts in one round.
    ASK_APPROVED = "AskForBid (approved)"
    ACCEPT = "BidAccepted"
    REJECT = "BidRejected"
    CANCEL = "CancelExecution"

    @property
    def method(self) -> str:
        """The bprotocol method that carries it."""
        return "AskForBid" if self is SendKind.ASK_APPROVED else self.value

    @property
    def stops(self) -> bool:
        """Whether it stops an execution (its outcome changes nothing in the store)."""
        return self in (SendKind.CANCEL, SendKind.REJECT)


@dataclass(slots=True)
class Send:
    """A bprotocol message a plan implies, to send once the plan is stored."""

    kind: SendKind
    execution: Execution
    justification: str = ""


#: Jobs whose next delayed evaluation is remembered before past entries are dropped.
_NEXT_LOOK_LIMIT = 10_000
#: Acknowledgements kept per node for its next ask; past it the oldest are dropped (the node
#: then sends those callbacks again by a call, which is applied as a repeat).
_ACK_LIMIT = 4096

#: Applies a node's callbacks in order, one outcome each (``Orchestrator.on_callbacks``).
ApplyCallbacks = Callable[
    [Sequence[BidResult | RunResult | ComputeFailure]], Awaitable[list[BaseException | None]]
]
#: Told of a run result refused on arrival: (sender, execution ID, reason).
RefusedRunResult = Callable[[str, str, str], Awaitable[None]]


class Planner:
    def __init__(
        self,
        *,
        store: JobStore,
        transport: ComputeTransport,
        enqueue: Callable[[Evaluation], None],
        new_failure_eval: Callable[[Job, str], Evaluation],
        apply_callbacks: ApplyCallbacks | None = None,
        refused_run_result: RefusedRunResult | None = None,
        answer_linger: float = 0.0,
    ) -> None:
        self._store = store
        self._transport = transport
        self._enqueue = enqueue
        self._failure_eval = new_failure_eval
        #: Where callbacks that come back in an ask's answer are applied (the answers one
        #: node's batch of asks brought back, in one transaction); without it, asks allow no
        #: answer linger and nodes send every callback by a call of their own.
        self.answers = (
            AnswerGroups(apply_callbacks, store.transaction)
            if apply_callbacks is not None
            else None
        )
        self._refused_run_result = refused_run_result
        self._answer_linger = answer_linger if apply_callbacks is not None else 0.0
        #: Per node, the answered callbacks applied here, acknowledged by its next ask.
        self._applied: dict[str, list[int]] = {}
        #: Per job, when the delayed evaluation last planned for it fires (Unix ns).
        self._next_look: dict[str, int] = {}
        #: Stop messages (cancel, reject) on their way to nodes that may be unreachable.
        self._stopping: set[asyncio.Task[None]] = set()

    def apply(self, plan: Plan) -> list[Send]:
        """Persist ``plan`` atomically; returns the messages to send."""
        store = self._store
        sends: list[Send] = []
        now = now_ns()
        with store.transaction():
            for change in plan.changes:
                ex = store.get_execution(change.execution_id)
                compute_state = change.compute_state
                if change.desired_state == D.STOPPED and compute_state is None and ex.is_active():
                    if ex.compute_state == E.ASK_FOR_BID_ACCEPTED:
                        compute_state = E.BID_REJECTED
                        sends.append(Send(SendKind.REJECT, ex, change.desired_message))
                    else:
                        compute_state = E.CANCELLED
                        if ex.compute_state != E.NEW:
                            sends.append(Send(SendKind.CANCEL, ex, change.desired_message))
                elif (
                    change.desired_state == D.RUNNING and ex.compute_state == E.ASK_FOR_BID_ACCEPTED
                ):
                    compute_state = E.BID_ACCEPTED
                    sends.append(Send(SendKind.ACCEPT, ex))
                elif change.cancel_on_node and ex.is_active() and ex.compute_state != E.NEW:
                    sends.append(Send(SendKind.CANCEL, ex, change.compute_message))
                store.update_execution(
                    ex.id,
                    desired_state=change.desired_state,
                    desired_message=change.desired_message or None,
                    compute_state=compute_state,
                    compute_message=change.compute_message or change.desired_message or None,
                    compute_details=change.compute_details or None,
                    event=change.event,
                )
            for ex in plan.new_executions:
                ex.compute_state = E.NEW
                store.create_execution(
                    ex,
                    Event(
                        message=f"Requested execution on {ex.node_id}",
                        topic="Scheduling",
                        timestamp=now,
                    ),
                )
                # Desired RUNNING from the start: approved in advance, the node bids and
                # starts in one round. Either way the execution waits in AskForBid for the
                # node's OnBidComplete, which moves it on (``ExecutionCallbacks``).
                pre_approved = ex.desired_state == D.RUNNING
                updated = store.update_execution(ex.id, compute_state=E.ASK_FOR_BID)
                sends.append(Send(SendKind.ASK_APPROVED if pre_approved else SendKind.ASK, updated))
            if plan.new_job_state is not None and (
                plan.new_job_state != plan.job.state
                # Same state, new reason (a queued job now waits for something else).
                or (plan.job_event is not None and plan.job_message != plan.job.state_message)
            ):
                store.update_job_state(
                    plan.job.id,
                    plan.new_job_state,
                    message=plan.job_message,
                    event=plan.job_event,
                )
            if plan.reputation:
                store.record_verdicts(plan.reputation)
                for change in plan.changes:
                    if change.compute_details.get("Verification") == "rejected":
                        # A node whose results disagree (or carry no CID) is worth an
                        # operator's look: it may be faulty or dishonest.
                        log.warning(
                            "job %s: execution %s %s",
                            plan.job.id,
                            change.execution_id,
                            change.compute_message,
                        )
            evaluations = self._not_yet_planned(plan, now)
            for ev in evaluations:
                store.create_evaluation(ev)
            store.set_evaluation_status(plan.evaluation.id, EvaluationStatus.COMPLETE)
        due = max(plan.evaluation.create_time, plan.evaluation.wait_until)
        if due:
            SCHEDULING_SECONDS.observe(max(0, now_ns() - due) / 1e9)
        self._remember_next_look(plan, evaluations, now)
        for ev in evaluations:
            self._enqueue(ev)
        return sends

    def _not_yet_planned(self, plan: Plan, now: int) -> list[Evaluation]:
        """The plan's new evaluations, less delayed ones that an evaluation already waiting
        for the job makes redundant (it looks at the job no later). Without this, every
        event that re-evaluates a waiting job would start one more timer chain for it."""
        pending = self._next_look.get(plan.job.id, 0)
        if pending and pending <= plan.evaluation.wait_until:
            # The look remembered is this evaluation (or one before it): it is being made,
            # if a moment before its due time (timers may fire a millisecond early). No
            # other look is to come, and dropping the next one would end the chain.
            pending = 0
        return [
            ev
            for ev in plan.new_evaluations
            if not (ev.wait_until > now and now < pending <= ev.wait_until)
        ]

    def _remember_next_look(self, plan: Plan, evaluations: list[Evaluation], now: int) -> None:
        """Once the plan is stored: when the job is looked at next (forgotten when it ends)."""
        job_id = plan.job.id
        if plan.new_job_state is not None and plan.new_job_state.is_terminal():
            self._next_look.pop(job_id, None)
            return
        delayed = [ev.wait_until for ev in evaluations if ev.wait_until > now]
        if delayed:
            self._next_look[job_id] = min(delayed)
        if len(self._next_look) > _NEXT_LOOK_LIMIT:
            self._next_look = {j: t for j, t in self._next_look.items() if t > now}

    async def dispatch(self, job: Job, sends: list[Send]) -> None:
        """Send every message of a plan, in parallel across nodes.

        Stop messages (cancel, reject) go out in the background: their outcome changes
        nothing in the store, and the node they go to is often the one that was just lost,
        where a send waits for its whole deadline. Awaiting them would hold the job's
        evaluation, and with it the replacement's acceptance, for that long.
        """
        waited = []
        for s in sends:
            if s.kind.stops:
                task = asyncio.create_task(self._send(job, s), name=f"stop-{s.execution.id}")
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            else:
                waited.append(s)
        if waited:
            started = time.perf_counter()
            if len(waited) == 1:
                await self._send(job, waited[0])  # (no task of its own, no turn to wait for)
            else:
                await asyncio.gather(*(self._send(job, s) for s in waited))
            DISPATCH_SECONDS.observe(time.perf_counter() - started)

    async def close(self, grace: float = 2.0) -> None:
        """Give stop messages still on their way ``grace`` seconds, then drop them (the
        nodes' own reconciliation stops what they never heard about)."""
        pending = set(self._stopping)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def reject_bid(self, execution: Execution, reason: str) -> None:
        """Tell a node its bid was rejected (the store already says so)."""
        job = self._store.get_job(execution.job_id)
        await self._send(job, Send(SendKind.REJECT, execution, reason))

    async def _send(self, job: Job, s: Send) -> None:
        ex = s.execution
        t = self._transport
        started = time.perf_counter()
        try:
            if s.kind is SendKind.ASK:
                ex.job = job
                await t.ask_for_bid(ex.node_id, AskForBidRequest(ex, wait_for_approval=True))
            elif s.kind is SendKind.ASK_APPROVED:
                ex.job = job
                await self._ask_approved(ex)
            elif s.kind is SendKind.ACCEPT:
                await t.bid_accepted(ex.node_id, BidDecision(ex.id, True, "bid accepted"))
            elif s.kind is SendKind.REJECT:
                await t.bid_rejected(ex.node_id, BidDecision(ex.id, False, s.justification))
            else:
                await t.cancel_execution(ex.node_id, CancelExecutionRequest(ex.id, s.justification))
            GRPC_CALL_SECONDS.labels(method=s.kind.method).observe(time.perf_counter() - started)
        except BacalhauError as exc:
            if s.kind.stops:
                # The execution is already recorded as stopped; the node may be gone.
                log.warning("could not tell node %s to stop %s: %s", ex.node_id, ex.id, exc)
                return
            if isinstance(exc, InvalidRequest):
                # The job itself cannot be sent (no node could ever take it): retrying
                # elsewhere would only repeat the failure.
                self._fail_unsendable(job, ex, exc)
                return
            self._record_send_failure(job, ex, exc)
        except (ValueError, TypeError, OverflowError) as exc:
            # Turning the stored job into a message failed (a value the wire cannot carry,
            # stored by an older version): fail the job rather than leave it pending forever.
            if s.kind not in (SendKind.ASK, SendKind.ASK_APPROVED):
                log.warning("could not tell node %s about %s: %s", ex.node_id, ex.id, exc)
                return
            self._fail_unsendable(
                job, ex, InvalidJobSpec(f"the job cannot be encoded for compute nodes: {exc}")
            )

    def _record_refusal(self, job: Job, ex: Execution, exc: BacalhauError) -> None:
        msg = f"node {ex.node_id} refused this requester: {exc.message}"
        if exc.hint:
            msg += f" ({exc.hint})"
        self._record_unsent(job, ex, exc, msg, state=E.ASK_FOR_BID_REJECTED, expected=_ASKED)

    async def _ask_approved(self, ex: Execution) -> None:
        """Send a pre-approved ask that lets the node answer with the execution's callbacks,
        and apply what the answer carries as a delivered batch is applied."""
        applied = tuple(self._applied.pop(ex.node_id, ()))
        request = AskForBidRequest(
            ex,
            wait_for_approval=False,
            answer_linger=self._answer_linger,
            applied_callbacks=applied,
        )
        try:
            answer = await self._transport.ask_for_bid(ex.node_id, request)
        except BaseException:
            if applied:  # the node may not have them: the next ask acknowledges them
                self._acknowledge(ex.node_id, applied)
            raise
        if answer is None:
            return
        try:
            await self._apply_answer(ex.node_id, answer)
        except Exception:
            # The node was reached and keeps what it answered with: unacknowledged, it comes
            # again by call after its grace. Not a failure to reach the node.
            log.exception("applying node %s's answer for %s failed", ex.node_id, ex.id)

    async def _apply_answer(self, node_id: str, answer: AskAnswer) -> None:
        """Apply an answer's callbacks. Those applied (or refused for good, as a call would
        have them dropped) are acknowledged by the next ask to the node; one that failed in
        a way that may pass is not, so the node sends it again by a call after its grace."""
        settled: list[int] = []
        for seq, execution_id, reason in answer.refused:
            if self._refused_run_result is not None:
                await self._refused_run_result(node_id, execution_id, reason)
            settled.append(seq)  # counted once: the node is not to send it again
        if answer.callbacks and self.answers is not None:
            ANSWERED_CALLBACKS.inc(len(answer.callbacks))
            outcomes = await self.answers.apply(node_id, answer.callbacks)
            settled += self._settled(node_id, answer, outcomes)
        self._acknowledge(node_id, settled)

    @staticmethod
    def _settled(
        node_id: str, answer: AskAnswer, outcomes: Sequence[BaseException | None]
    ) -> list[int]:
        """The answered callbacks done with: applied, or refused for good (logged)."""
        settled: list[int] = []
        for seq, callback, outcome in zip(answer.seqs, answer.callbacks, outcomes, strict=False):
            if outcome is None:
                settled.append(seq)
            elif isinstance(outcome, BacalhauError) and not outcome.retryable:
                log.warning(
                    "refused %s for execution %s from node %s: %s",
                    type(callback).__name__,
                    callback.execution_id,
                    node_id,
                    outcome,
                )
                settled.append(seq)
        return settled

    def _acknowledge(self, node_id: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        pending = self._applied.setdefault(node_id, [])
        pending.extend(seqs)
        if len(pending) > _ACK_LIMIT:
            del pending[: len(pending) - _ACK_LIMIT]

    def _fail_unsendable(self, job: Job, ex: Execution, exc: BacalhauError) -> None:
        """Fail an execution and its job for an error that no retry can cure."""
        msg = f"job cannot be sent to compute nodes: {exc.message}"
        details = Failure(exc.code, False).details()
        hint = exc.hint or "fix the job spec and submit it again"
        now = now_ns()
        log.warning("job %s failed: %s", job.id, msg)
        with self._store.transaction():
            # A conflict means the execution already moved on; the job still cannot be sent.
            with contextlib.suppress(RevisionConflict):
                self._store.update_execution(
                    ex.id,
                    compute_state=E.FAILED,
                    desired_state=D.STOPPED,
                    compute_message=msg,
                    compute_details=details,
                    expected_states=frozenset({E.ASK_FOR_BID, E.BID_ACCEPTED}),
                    event=Event(message=msg, topic="Scheduling", timestamp=now, details=details),
                )
            current = self._store.get_job(job.id)
            if not current.state.is_terminal():
                self._store.update_job_state(
                    job.id,
                    JobStateType.FAILED,
                    message=msg,
                    event=Event(
                        message=msg,
                        topic="Scheduling",
                        timestamp=now,
                        details=Failure(exc.code, False, hint=hint).details(),
                    ),
                )
            ev = self._failure_eval(job, TriggeredBy.EXEC_FAILURE)
            self._store.create_evaluation(ev)
        self._enqueue(ev)  # stops whatever else of the job still runs

    def _record_send_failure(self, job: Job, ex: Execution, exc: BacalhauError) -> None:
        if isinstance(exc, PermissionDenied) and ex.compute_state in _ASKED:
            # The node answered: it obeys other requesters only (it joined the cluster
            # through another node's seed). Not a node that may be back in a moment: it
            # turned the job down, and the job goes elsewhere or fails saying why.
            self._record_refusal(job, ex, exc)
            return
        self._record_unsent(
            job,
            ex,
            exc,
            f"could not reach node {ex.node_id}: {exc.message}",
            state=E.FAILED,
            expected=frozenset({E.ASK_FOR_BID, E.BID_ACCEPTED}),
            details=Failure(exc.code, True, flags=(UNREACHED,)).details(error=False),
        )

    def _record_unsent(
        self,
        job: Job,
        ex: Execution,
        exc: BacalhauError,
        msg: str,
        *,
        state: ExecutionStateType,
        expected: frozenset[ExecutionStateType],
        details: dict[str, str] | None = None,
    ) -> None:
        """A message to a node did not go through: record why on the execution, stopped,
        and evaluate its job again (unless the node answered meanwhile)."""
        try:
            self._store.update_execution(
                ex.id,
                compute_state=state,
                desired_state=D.STOPPED,
                compute_message=msg,
                compute_details=details,
                expected_states=expected,
                event=Event(
                    message=msg,
                    topic="Scheduling",
                    timestamp=now_ns(),
                    details={"IsError": "true", "ErrorCode": exc.code},
                ),
            )
        except RevisionConflict:
            return  # the node answered after all
        ev = self._failure_eval(job, TriggeredBy.EXEC_FAILURE)
        with self._store.transaction():
            self._store.create_evaluation(ev)
        self._enqueue(ev)
