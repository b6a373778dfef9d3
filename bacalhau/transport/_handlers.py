"""What the transport calls into: the two roles' message handlers.

They are structural Protocols, so ``compute/`` and ``orchestrator/`` implement them without
importing transport. Handlers must return quickly: a call's deadline is seconds, and long
work (bidding, running) continues after the acknowledgement, answered by a later callback
(or, for a pre-approved ask that allows it, by callbacks in the answer, within its linger).
Raise a :class:`bacalhau.errors.BacalhauError` to refuse a message; the caller receives the
same error class.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ExecutionReport,
    LogChunk,
    LogRequest,
    RunResult,
)


class ComputeHandler(Protocol):
    """The compute role: receives the requester's messages.

    ``source_node_id`` is the requester's node ID as proven by its TLS certificate and its
    signature over the command (addressed to this node). Being a cluster member proves
    nothing more: the handler decides whether that requester may command this node, and
    refuses with :class:`bacalhau.errors.PermissionDenied` otherwise.
    Calls may be repeated (a sender retries once when a connection drops), so handlers are
    idempotent on the execution ID.
    """

    async def ask_for_bid(self, source_node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        """Start bidding. With ``request.answer_linger`` the handler may wait that long and
        return the execution's callbacks queued meanwhile, which the answer then carries."""
        ...

    async def bid_accepted(self, source_node_id: str, decision: BidDecision) -> None: ...

    async def bid_rejected(self, source_node_id: str, decision: BidDecision) -> None: ...

    async def cancel_execution(
        self, source_node_id: str, request: CancelExecutionRequest
    ) -> None: ...

    async def withdraw_queued(
        self, source_node_id: str, request: CancelExecutionRequest
    ) -> str | None:
        """Drop the execution if it still waits in the run queue: None when withdrawn,
        else its state on the node ("" when unknown), nothing changed."""
        ...

    def stream_logs(self, source_node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        """The execution's output as it is written (an exception to "return quickly": the
        stream lasts as long as the follower wants it, paced by the follower)."""
        ...


class OrchestratorHandler(Protocol):
    """The requester role: receives compute nodes' callbacks and execution reports, and
    hands out the modules it sent by reference.

    Every message has been checked before it gets here: it was signed by the node it names
    (``node_id``) and that node is the TLS peer that delivered it. Module requests are not
    signed (the answer is content-addressed), but come from a cluster member all the same.
    """

    async def on_bid_complete(self, result: BidResult) -> None: ...

    async def on_run_complete(self, result: RunResult) -> None: ...

    async def on_compute_failure(self, failure: ComputeFailure) -> None: ...

    async def on_callbacks(
        self, callbacks: Sequence[BidResult | RunResult | ComputeFailure]
    ) -> list[BaseException | None]:
        """Apply a node's batch of callbacks in their order, each as its own method would;
        one outcome per item: None when applied, else what refused it (the other items are
        applied all the same). After an item fails with a retryable error the rest are not
        applied and fail retryably too, so the node sends them again in their order."""
        ...

    async def report_executions(self, report: ExecutionReport) -> None: ...

    async def get_module(self, sha256: str) -> str:
        """The ``data:`` URL of the inline WASM module whose SHA-256 is ``sha256`` (hex), as
        the requester keeps it for the asks it sent by reference; raise
        :class:`bacalhau.errors.NotFound` when it holds none. The caller checks the hash."""
        ...

    async def presign_result_upload(self, node_id: str, job_id: str, execution_id: str) -> str:
        """A pre-signed PUT URL for the results of ``execution_id`` (of ``job_id``) in the
        requester's managed bucket (the ``s3managed`` publisher). ``node_id`` is the TLS
        peer asking: the execution must run on it."""
        ...


@runtime_checkable
class RunResultRefusals(Protocol):
    """Optional for an :class:`OrchestratorHandler`: told of the run results the transport
    refused (the caller still gets the refusal), so that a false proposal counts against the
    node that made it.

    ``sender`` is the TLS peer that delivered it, the one thing proven; ``execution_id`` is
    what the unverified payload names ("" when it does not parse), and ``reason`` why it was
    refused (its signature does not verify, or it is not the sender's).
    """

    async def on_refused_run_result(self, sender: str, execution_id: str, reason: str) -> None: ...
