"""The bprotocol callbacks a compute node makes (OnBidComplete, OnRunComplete,
OnComputeFailure): each records what happened to one execution and queues an evaluation.

Callbacks may arrive late or twice (a node retries until it is heard): every write is
conditional on the execution still being in a state the callback can follow, and a stale
callback is ignored rather than corrupting a finished execution.

Late results: an execution whose node was declared lost is failed and replaced. If that node
comes back and reports a result for it, the failed execution stays failed (terminal states
stay terminal) and the report is recorded in its history as ignored: the replacement's result
is the one kept, whether or not it has finished yet, so a job never completes twice nor
publishes two results for one execution slot. Replaced executions that the node still runs
are cancelled on it when it reports what it holds (``_reconcile``).

False proposals: a verified job's replica is the node's signed claim about its results. A run
result the transport refused (its signature does not verify, or its signer is not the node
that delivered it) is reported here by the TLS peer that sent it: that node is recorded as
disagreeing and its replica fails verification, so the job does not wait for it. A valid
result about another node's execution counts against its sender, never against the node it
names. What each completed replica published is checked against its claimed CID
(``_result_check``) before the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bacalhau.errors import (
    BacalhauError,
    NotFound,
    PermissionDenied,
    RevisionConflict,
    VerificationFailed,
)
from bacalhau.models import (
    IS_ERROR,
    BidResult,
    ComputeFailure,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    JobStateType,
    NodeState,
    RunResult,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._attempts import HOOK_REJECTION
from bacalhau.orchestrator._hooks import ApprovalChain, BidApprovalHook, ChainDecision
from bacalhau.orchestrator._late_reports import keep_late_result, tell_late_report
from bacalhau.orchestrator._nodes import NodeDirectory
from bacalhau.orchestrator._planner import Planner
from bacalhau.orchestrator._result_check import ResultChecks
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._verifier import CHECK_DETAIL, PENDING, REJECTED

log = logging.getLogger(__name__)
D = ExecutionDesiredStateType
E = ExecutionStateType

#: States from which a run result or a failure report can still be recorded.
_REPORTABLE = frozenset(
    {E.NEW, E.ASK_FOR_BID, E.ASK_FOR_BID_ACCEPTED, E.BID_ACCEPTED, E.RUNNING, E.PUBLISHING}
)

#: Execution detail set while the approval hooks decide its bid: kept in the store, so a
#: requester restarted meanwhile knows which decisions to take up again.
_AWAITING = "AwaitingApproval"
#: How long a resumed decision waits for the bidding node to be known again (it may not
#: have rejoined a requester that just restarted), and how often it looks.
_NODE_WAIT = 30.0
_NODE_POLL = 0.2
#: How many of the hooks' latest decisions ``node describe`` shows.
_RECENT = 20

#: Job types whose executions run until stopped: one that ends has failed.
_LONG_RUNNING = frozenset({"daemon", "service"})
#: Bacalhau's message for a long-running execution that ended by itself.
_UNEXPECTED = "execution completed unexpectedly"

__all__ = ["BidApprovalHook", "ExecutionCallbacks"]


class ExecutionCallbacks:
    """Records compute nodes' reports on their executions."""

    def __init__(
        self,
        *,
        store: JobStore,
        planner: Planner,
        nodes: NodeDirectory,
        hooks: Sequence[BidApprovalHook],
        enqueue: Callable[[Job, str], object],
        result_checks: ResultChecks | None = None,
    ) -> None:
        self._store = store
        #: Checks verified replicas' published results against their claimed CIDs.
        self._checks = result_checks
        self._planner = planner
        self._nodes = nodes
        # An ApprovalChain given by node/ keeps its own defer policy and is closed by it.
        self._owns_chain = not isinstance(hooks, ApprovalChain)
        self._chain = hooks if isinstance(hooks, ApprovalChain) else ApprovalChain(hooks)
        self._enqueue = enqueue
        #: Executions whose bid the hooks are deciding: a bid delivered again meanwhile (the
        #: node retries a callback it thinks lost) does not ask them twice.
        self._deciding: set[str] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=_RECENT)

    def recent_decisions(self) -> list[dict[str, Any]]:
        """The approval hooks' latest decisions, newest first: which bid, which hook
        decided (for a rejection, the hook that said no) and every hook's reason."""
        return list(reversed(self._recent))

    @property
    def needs_approval(self) -> bool:
        """Whether bids wait for approval hooks (false: asks may go out pre-approved)."""
        return self._chain.needs_approval

    def _own_execution(self, execution_id: str, node_id: str) -> Execution:
        ex = self._store.get_execution(execution_id)
        if ex.node_id != node_id:
            raise PermissionDenied(
                f"node {node_id} reported on execution {execution_id} of node {ex.node_id}"
            )
        return ex

    def _after_callback(self, job_id: str) -> None:
        job = self._store.get_job(job_id)
        self._enqueue(job, TriggeredBy.EXEC_UPDATE)

    async def on_bid_complete(self, result: BidResult, *, evaluate: bool = True) -> None:
        """A node's bid. ``evaluate=False``: a report of the bid's end follows in the same
        batch, and the pass after that report sees all this bid's pass would see: an
        accepted pre-approved bid is then recorded without a pass of its own."""
        ex = self._own_execution(result.execution_id, result.node_id)
        # Asked pre-approved (desired RUNNING from the start): the node already runs it.
        pre_approved = ex.desired_state == D.RUNNING
        if result.accepted and self._chain.needs_approval and not pre_approved:
            # The hooks decide in the background: the node's callback is answered now, and
            # a slow hook holds up this bid only.
            self._await_approval(ex)
            return
        try:
            # One transaction for the state the node reported and the evaluation that
            # follows it (one commit instead of two); a pre-approved execution never rests in
            # AskForBidAccepted, where the scheduler would take it for a bid still to approve.
            with self._store.transaction():
                if result.accepted:
                    self._store.update_execution(
                        ex.id,
                        compute_state=E.ASK_FOR_BID_ACCEPTED,
                        expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                        event=Event(
                            message="Bid accepted by node",
                            topic="Scheduling",
                            timestamp=now_ns(),
                        ),
                    )
                    if pre_approved:
                        self._record_pre_approval(ex.id)
                        if not evaluate:
                            # Nothing in that pass waits for it: the job is Running and
                            # this execution runs, as the end's pass will find them.
                            return
                else:
                    message = result.event.message or "node declined to bid"
                    self._store.update_execution(
                        ex.id,
                        compute_state=E.ASK_FOR_BID_REJECTED,
                        desired_state=D.STOPPED,
                        compute_message=message,
                        compute_details=result.event.details,
                        expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                        event=Event(
                            message=f"Node declined: {message}",
                            topic="Scheduling",
                            timestamp=now_ns(),
                            details=result.event.details,
                        ),
                    )
                self._after_callback(ex.job_id)
        except RevisionConflict as exc:
            log.info("ignoring late bid for %s: %s", ex.id, exc.message)

    def _record_pre_approval(self, execution_id: str) -> None:
        """Record the acceptance the requester gave in advance, as the scheduler records it
        in two rounds (same state, messages and history), without a BidAccepted to send.

        That pass also makes a pending or queued job Running (every scheduler does, once an
        execution is accepted): done here too, so the run result, which may arrive in the
        same batch of callbacks before any evaluation, follows it as in two rounds."""
        ex = self._store.update_execution(
            execution_id,
            compute_state=E.BID_ACCEPTED,
            desired_message="bid accepted",
            compute_message="bid accepted",
            expected_states=frozenset({E.ASK_FOR_BID_ACCEPTED}),
            event=Event(message="Bid accepted", topic="Scheduling", timestamp=now_ns()),
        )
        if self._store.get_job(ex.job_id).state in (JobStateType.PENDING, JobStateType.QUEUED):
            self._store.update_job_state(
                ex.job_id,
                JobStateType.RUNNING,
                event=Event(message="Running", topic="State Update", timestamp=now_ns()),
            )

    def _await_approval(self, ex: Execution) -> None:
        if ex.id in self._deciding:
            return
        names = ", ".join(hook.name for hook in self._chain)
        try:
            self._store.update_execution(
                ex.id,
                compute_details={**ex.compute_details, _AWAITING: "true"},
                expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                event=Event(
                    message=f"Bid received from node; asking approval hooks: {names}",
                    topic="Scheduling",
                    timestamp=now_ns(),
                ),
            )
        except RevisionConflict as exc:
            log.info("ignoring late bid for %s: %s", ex.id, exc.message)
            return
        self._deciding.add(ex.id)
        self._chain.submit(lambda: self._decide(ex.id))

    def resume_decisions(self, executions: Iterable[Execution]) -> int:
        """Take up again the decisions a restart cut short: bids the node accepted whose
        hooks had not answered yet (nothing else would ever ask them: the node waits for
        the requester's word). Returns how many were resumed."""
        resumed = 0
        for ex in executions:
            if (
                ex.compute_details.get(_AWAITING) != "true"
                or ex.compute_state not in (E.NEW, E.ASK_FOR_BID)
                or ex.desired_state == D.STOPPED
                or ex.id in self._deciding
            ):
                continue
            with contextlib.suppress(RevisionConflict):
                self._store.update_execution(
                    ex.id,
                    expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                    event=Event(
                        message="Requester restarted while the bid was being decided; "
                        "asking the approval hooks again",
                        topic="Scheduling",
                        timestamp=now_ns(),
                    ),
                )
            self._deciding.add(ex.id)
            self._chain.submit(functools.partial(self._decide, ex.id, node_wait=_NODE_WAIT))
            resumed += 1
        return resumed

    async def aclose(self) -> None:
        """Stop deciding bids when the chain is this object's own (one given by node/ is
        closed by its owner)."""
        if self._owns_chain:
            await self._chain.aclose()

    async def _decide(self, execution_id: str, *, node_wait: float = 0.0) -> None:
        try:
            await self._decide_once(execution_id, node_wait)
        finally:
            self._deciding.discard(execution_id)

    async def _bidder(self, node_id: str, wait: float) -> NodeState:
        """The bidding node; waits up to ``wait`` seconds for one not known (yet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                return self._nodes.get(node_id)
            except BacalhauError:
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(_NODE_POLL)

    async def _decide_once(self, execution_id: str, node_wait: float = 0.0) -> None:
        """Ask the hooks about one bid, then accept or reject it as they say."""
        ex = self._store.get_execution(execution_id)
        job = self._store.get_job(ex.job_id)
        try:
            node = await self._bidder(ex.node_id, node_wait)
        except BacalhauError as exc:
            # No hook was asked: the bidder is not a node this requester knows (yet).
            decision = ChainDecision(accepted=False, decided_by="", reason=exc.message)
        else:
            decision = await self._chain.decide(
                job, ex, node, on_defer=lambda hook, why: self._record_defer(ex.id, hook, why)
            )
        said = "; ".join(decision.reasons)
        self._recent.append(
            {
                "Time": now_ns(),
                "JobID": ex.job_id,
                "ExecutionID": ex.id,
                "NodeID": ex.node_id,
                "Accepted": decision.accepted,
                "DecidedBy": decision.decided_by,
                "Reasons": list(decision.reasons) or [decision.reason],
            }
        )
        try:
            self._store.update_execution(
                ex.id,
                compute_state=E.ASK_FOR_BID_ACCEPTED,
                compute_details={k: v for k, v in ex.compute_details.items() if k != _AWAITING},
                expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                event=Event(
                    message="Bid accepted by node"
                    + (f"; approved by hooks ({said})" if decision.accepted else ""),
                    topic="Scheduling",
                    timestamp=now_ns(),
                    details={"ApprovalHooks": said} if decision.accepted and said else {},
                ),
            )
            if not decision.accepted:
                # A hook said no (or the bidder is unknown): reject the bid so the scheduler
                # looks elsewhere.
                reason = (
                    f"{HOOK_REJECTION}{decision.decided_by}: {decision.reason}"
                    if decision.decided_by
                    else f"bid rejected: {decision.reason}"
                )
                self._store.update_execution(
                    ex.id,
                    desired_state=D.STOPPED,
                    compute_state=E.BID_REJECTED,
                    compute_message=reason,
                    desired_message=reason,
                    event=Event(
                        message=reason,
                        topic="Scheduling",
                        timestamp=now_ns(),
                        details=(
                            {"ApprovalHook": decision.decided_by, "ApprovalHooks": said}
                            if decision.decided_by
                            else {}
                        ),
                    ),
                )
                await self._planner.reject_bid(self._store.get_execution(ex.id), reason)
        except RevisionConflict as exc:
            log.info("bid for %s was settled while its hooks decided: %s", ex.id, exc.message)
            return
        self._after_callback(ex.job_id)

    def _record_defer(self, execution_id: str, hook: str, why: str) -> None:
        message = f"Approval hook {hook} deferred its decision" + (f": {why}" if why else "")
        # Settled meanwhile: nothing to add; the decision that follows is dropped the same way.
        with contextlib.suppress(RevisionConflict):
            self._store.update_execution(
                execution_id,
                expected_states=frozenset({E.NEW, E.ASK_FOR_BID}),
                event=Event(
                    message=message,
                    topic="Scheduling",
                    timestamp=now_ns(),
                    details={"ApprovalHook": hook},
                ),
            )

    async def on_run_complete(self, result: RunResult) -> None:
        try:
            ex = self._own_execution(result.execution_id, result.node_id)
        except PermissionDenied as err:
            # Signed by its sender, about another node's replica: a false proposal of the
            # sender's (the named node did nothing).
            self._false_proposal(result.node_id, result.execution_id, err.message)
            raise
        code = result.run_output.exit_code
        message = "Completed successfully" if code == 0 else f"Completed with exit code {code}"
        # The history says how it ended; the execution's own message stays empty for a clean
        # end, as Bacalhau leaves it (`job executions` then reads "Completed  Stopped").
        comment = "" if code == 0 else f"exit code {code}"
        state = E.COMPLETED
        details: dict[str, str] = {}
        job = self._store.get_job(ex.job_id)
        # A verified replica's claimed CID is checked against what it published first.
        check = self._checks is not None and job.verified
        if job.type in _LONG_RUNNING:
            # A daemon or service execution is meant to run until stopped: ending at all is
            # a failure (as in Bacalhau), which the scheduler restarts after a backoff.
            state = E.FAILED
            message = comment = f"{_UNEXPECTED} (exit code {code})"
            details = {IS_ERROR: "true"}
        try:
            # The reported state and the evaluation that follows it commit together.
            with self._store.transaction():
                updated = self._store.update_execution(
                    ex.id,
                    compute_state=state,
                    desired_state=D.STOPPED,
                    desired_message="execution completed",
                    compute_message=comment,
                    published_result=result.published_result,
                    run_output=result.run_output,
                    compute_details={**ex.compute_details, CHECK_DETAIL: PENDING}
                    if check
                    else None,
                    expected_states=_REPORTABLE,
                    event=Event(
                        message=message, topic="Execution", timestamp=now_ns(), details=details
                    ),
                )
                self._after_callback(ex.job_id)
        except RevisionConflict as exc:
            if state == E.COMPLETED and not check and self._keep_late(ex.id, result, message):
                return
            log.info("ignoring late run result for %s: %s", ex.id, exc.message)
            outcome = message if state == E.FAILED else f"{message.lower()} (exit code {code})"
            tell_late_report(self._store, ex.id, state, outcome)
            return
        if check and self._checks is not None:
            self._checks.start(updated)

    async def on_refused_run_result(self, sender: str, execution_id: str, reason: str) -> None:
        """The transport refused a run result ``sender`` (the TLS peer) delivered, for
        ``reason`` (its signature does not verify, or it is not the sender's). The
        ``execution_id`` it names is unproven: it only says which replica the sender meant."""
        self._false_proposal(sender, execution_id, reason)

    def _false_proposal(self, sender: str, execution_id: str, reason: str) -> None:
        """Count a run result that does not hold as ``sender``'s disagreement, and fail the
        replica it names when that replica is the sender's own (a verified job's)."""
        log.warning(
            "refused a run result from node %s for execution %s: %s",
            sender,
            execution_id or "(unnamed)",
            reason,
        )
        try:
            ex = self._store.get_execution(execution_id) if execution_id else None
            job = self._store.get_job(ex.job_id) if ex is not None else None
        except NotFound:
            return
        if ex is None or job is None or not job.verified:
            return  # only verified jobs' results move a node's record
        if ex.node_id != sender or ex.compute_state not in _REPORTABLE:
            # Another node's replica (or one already settled): the sender alone answers
            # for it, and the replica keeps its course.
            self._store.record_verdicts({sender: False})
            return
        message = f"failed verification: the node's run result was refused ({reason})"
        try:
            with self._store.transaction():
                self._store.update_execution(
                    ex.id,
                    compute_state=E.FAILED,
                    desired_state=D.STOPPED,
                    compute_message=message,
                    compute_details={
                        **ex.compute_details,
                        **Failure(VerificationFailed.code, False).details(),
                        "Verification": REJECTED,
                    },
                    expected_states=_REPORTABLE,
                    event=Event(
                        message=message,
                        topic="Verification",
                        timestamp=now_ns(),
                        details={
                            **Failure(VerificationFailed.code, False).details(),
                            "Verification": REJECTED,
                        },
                    ),
                )
                self._store.record_verdicts({sender: False})
        except RevisionConflict:
            return  # settled meanwhile: the refused result changes nothing
        self._after_callback(ex.job_id)

    async def on_compute_failure(self, failure: ComputeFailure) -> None:
        ex = self._own_execution(failure.execution_id, failure.node_id)
        message = failure.event.message or "execution failed"
        try:
            # The failure and the evaluation that follows it commit together.
            with self._store.transaction():
                self._store.update_execution(
                    ex.id,
                    compute_state=E.FAILED,
                    desired_state=D.STOPPED,
                    compute_message=message,
                    compute_details=failure.event.details,
                    expected_states=_REPORTABLE,
                    event=Event(
                        message=message,
                        topic=failure.event.topic or "Execution",
                        timestamp=now_ns(),
                        details={IS_ERROR: "true", **failure.event.details},
                    ),
                )
                self._after_callback(ex.job_id)
        except RevisionConflict as exc:
            log.info("ignoring late failure for %s: %s", ex.id, exc.message)
            tell_late_report(self._store, ex.id, E.FAILED, f"failed: {message}")
            return

    def _keep_late(self, execution_id: str, result: RunResult, message: str) -> bool:
        """Keep a lost execution's late completion while its job still needs it."""
        code = result.run_output.exit_code
        try:
            with self._store.transaction():
                kept = keep_late_result(
                    self._store,
                    execution_id,
                    result,
                    message=message,
                    comment="" if code == 0 else f"exit code {code}",
                )
                if kept is None:
                    return False
                self._after_callback(kept.job_id)
        except RevisionConflict:
            return False  # changed meanwhile: told as an ignored report instead
        log.info("kept the late result of %s (its node had been declared lost)", execution_id)
        return True
