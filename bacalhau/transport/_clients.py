"""The two sides' clients: requester -> compute nodes, and compute node -> a requester."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import grpc

from bacalhau._proto.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from bacalhau.errors import (
    BacalhauError,
    InternalError,
    InvalidContent,
    InvalidRequest,
    NodeNotFound,
    PermissionDenied,
    Unavailable,
)
from bacalhau.identity import NodeFiles, NodeIdentity, is_peer_id
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
    NodeIdentityClaim,
    NodeType,
    RunResult,
)
from bacalhau.transport._answers import open_answer, open_answers
from bacalhau.transport._ask_batches import AskBatches, BatchesUnsupported
from bacalhau.transport._channel import DEFAULT_TIMEOUT_SECONDS, NodeChannel, unary_call
from bacalhau.transport._convert_messages import (
    CallbackMessage,
    ask_for_bid_to_proto,
    bid_accepted_to_proto,
    bid_rejected_to_proto,
    bid_result_to_proto,
    callback_item_to_proto,
    callback_outcome_from_proto,
    cancel_to_proto,
    compute_failure_to_proto,
    execution_report_to_proto,
    log_chunk_from_proto,
    log_request_to_proto,
    run_result_to_proto,
    withdrawal_to_proto,
)
from bacalhau.transport._errors import error_from_rpc
from bacalhau.transport._signing import open_sealed, seal
from bacalhau.transport._tls import MAX_MESSAGE_BYTES, TlsMaterial, tls_material

#: The most callbacks one DeliverCallbacks call carries, and about how many bytes: well under
#: gRPC's message limit, small enough that one call never holds the requester for long.
MAX_BATCH_ITEMS = 256
MAX_BATCH_BYTES = 1024 * 1024
#: About the most bytes of asks one AskForBids call carries (jobs of up to the API's 4 MB each
#: would otherwise pass gRPC's message limit together).
MAX_ASKS_CALL_BYTES = MAX_MESSAGE_BYTES // 4
#: How long a compute node may take to start answering a log request (it answers at once).
LOG_ANSWER_TIMEOUT_SECONDS = 10.0


def _check_node_id(node_id: str) -> None:
    if not is_peer_id(node_id):
        raise InvalidRequest(
            f"{node_id!r} is not a node ID",
            hint="node IDs are ed25519 peer IDs such as 12D3KooW...",
            component="Transport",
        )


class ComputeClient:
    """What a requester uses to reach compute nodes; signs every command it sends.

    Register each node's address once (:meth:`register_node`); the client keeps one warm
    channel per node, pinned to that node's ID, so a call can only reach the node it names.
    Each command is signed as this requester and addressed to that node, so it is valid
    nowhere else; the compute node acts on it only if it trusts this requester.
    Every call acknowledges receipt only; a connection failure is retried once, then raised
    as :class:`bacalhau.errors.Unavailable`.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        files: NodeFiles | TlsMaterial,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._identity = identity
        self._tls = tls_material(files)
        self._timeout = timeout
        self._addresses: dict[str, str] = {}
        self._channels: dict[str, tuple[NodeChannel, Any]] = {}
        self._retired: list[NodeChannel] = []
        self.ask_batches = AskBatches(self._ask_one, self._ask_many)

    def register_node(self, node_id: str, address: str) -> None:
        """Tell the client where ``node_id`` listens (``host:port``); may change over time."""
        _check_node_id(node_id)
        if self._addresses.get(node_id) == address:
            return
        self._addresses[node_id] = address
        old = self._channels.pop(node_id, None)
        if old is not None:
            self._retired.append(old[0])

    def forget_node(self, node_id: str) -> None:
        """Drop a node (its channel closes on the next call or at :meth:`close`)."""
        self._addresses.pop(node_id, None)
        old = self._channels.pop(node_id, None)
        if old is not None:
            self._retired.append(old[0])

    async def _stub(self, node_id: str) -> tuple[NodeChannel, Any]:
        if self._retired:
            retired, self._retired = self._retired, []
            for ch in retired:
                await ch.close()
        entry = self._channels.get(node_id)
        if entry is not None and entry[0].generation != self._tls.generation:
            entry[0].retire()  # renewed credentials: a new channel carries them
            entry = None
        if entry is None:
            address = self._addresses.get(node_id)
            if address is None:
                raise NodeNotFound(
                    f"no address known for node {node_id}",
                    hint="the node has not joined, or it left the cluster",
                )
            channel = NodeChannel(address, self._tls, node_id)
            entry = (channel, compute_pb2_grpc.ComputeServiceStub(channel.channel))
            self._channels[node_id] = entry
        return entry

    def _ids(self, node_id: str) -> dict[str, str]:
        return {"requester_node_id": self._identity.node_id, "compute_node_id": node_id}

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        """Send AskForBid; the node answers later through OnBidComplete, or, when the ask
        allows it (``request.answer_linger``), with the callbacks its answer carries, checked
        (see :func:`~bacalhau.transport._answers.open_answer`). Such pre-approved asks made
        for the same node in one turn of the event loop go in one call (see
        :mod:`~bacalhau.transport._ask_batches`)."""
        if request.answer_linger and not request.wait_for_approval:
            return await self.ask_batches.ask(node_id, request)
        return await self._ask_one(node_id, request)

    async def _ask_one(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        channel, stub = await self._stub(node_id)
        ask = seal(self._identity, ask_for_bid_to_proto(request, **self._ids(node_id)))
        response = await unary_call(
            stub.AskForBid,
            compute_pb2.AskForBidRequest(bid_ask=ask),
            channel=channel,
            timeout=self._timeout + request.answer_linger,
        )
        return open_answer(node_id, response)

    async def _ask_many(
        self, node_id: str, requests: Sequence[AskForBidRequest]
    ) -> list[AskAnswer | Exception | None]:
        """Several asks in AskForBids calls: each one's answer or error, in order. An ask
        that cannot be encoded is its own error; the others go in calls of at most
        :data:`MAX_ASKS_CALL_BYTES` (a large job's ask alone if need be), one signature each,
        and a call that fails fails its own asks."""
        channel, stub = await self._stub(node_id)
        ids = self._ids(node_id)
        outcomes: list[AskAnswer | Exception | None] = [None] * len(requests)
        calls: list[list[tuple[int, compute_pb2.BidAsk]]] = []
        size = 0
        for i, request in enumerate(requests):
            try:
                ask = ask_for_bid_to_proto(request, **ids)
            except (ValueError, TypeError, OverflowError) as exc:
                outcomes[i] = exc
                continue
            length = ask.ByteSize()
            if calls and size + length <= MAX_ASKS_CALL_BYTES:
                calls[-1].append((i, ask))
                size += length
            else:
                calls.append([(i, ask)])
                size = length
        linger = max(r.answer_linger for r in requests)
        done = await asyncio.gather(
            *(self._ask_call(node_id, channel, stub, [a for _, a in c], linger) for c in calls),
            return_exceptions=True,
        )
        for call, answered in zip(calls, done, strict=True):
            if isinstance(answered, BatchesUnsupported):
                raise answered  # the node handled none of them: all go again, one by one
            if isinstance(answered, BaseException):
                if not isinstance(answered, Exception):
                    raise answered
                for i, _ in call:
                    outcomes[i] = answered
                continue
            for (i, _), outcome in zip(call, answered, strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _ask_call(
        self,
        node_id: str,
        channel: NodeChannel,
        stub: Any,
        asks: list[compute_pb2.BidAsk],
        linger: float,
    ) -> list[AskAnswer | BacalhauError | None]:
        envelope = seal(self._identity, compute_pb2.BidAsks(asks=asks, **self._ids(node_id)))
        try:
            response = await unary_call(
                stub.AskForBids,
                compute_pb2.AskForBidsRequest(bid_asks=envelope),
                channel=channel,
                timeout=self._timeout + linger,
            )
        except InternalError as err:
            cause = err.__cause__
            if (
                isinstance(cause, grpc.aio.AioRpcError)
                and cause.code() == grpc.StatusCode.UNIMPLEMENTED
            ):
                raise BatchesUnsupported(str(err)) from err
            raise
        return open_answers(node_id, response, len(asks))

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        if not decision.accepted:
            raise InvalidRequest("bid_accepted needs a decision with accepted=True")
        channel, stub = await self._stub(node_id)
        acceptance = seal(self._identity, bid_accepted_to_proto(decision, **self._ids(node_id)))
        await unary_call(
            stub.BidAccepted,
            compute_pb2.BidAcceptedRequest(bid_acceptance=acceptance),
            channel=channel,
            timeout=self._timeout,
        )

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        if decision.accepted:
            raise InvalidRequest("bid_rejected needs a decision with accepted=False")
        channel, stub = await self._stub(node_id)
        rejection = seal(self._identity, bid_rejected_to_proto(decision, **self._ids(node_id)))
        await unary_call(
            stub.BidRejected,
            compute_pb2.BidRejectedRequest(bid_rejection=rejection),
            channel=channel,
            timeout=self._timeout,
        )

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        channel, stub = await self._stub(node_id)
        cancellation = seal(self._identity, cancel_to_proto(request, **self._ids(node_id)))
        await unary_call(
            stub.CancelExecution,
            compute_pb2.CancelExecutionRequest(cancellation=cancellation),
            channel=channel,
            timeout=self._timeout,
        )

    async def withdraw_queued(self, node_id: str, request: CancelExecutionRequest) -> str | None:
        """Take the execution back from the node's run queue: None when withdrawn, else its
        state there ("" when the node does not know it)."""
        channel, stub = await self._stub(node_id)
        withdrawal = seal(self._identity, withdrawal_to_proto(request, **self._ids(node_id)))
        response = await unary_call(
            stub.WithdrawQueued,
            compute_pb2.WithdrawQueuedRequest(withdrawal=withdrawal),
            channel=channel,
            timeout=self._timeout,
        )
        return None if response.withdrawn else response.state

    async def stream_logs(self, node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        """The execution's output from the node running it, chunk by chunk as it is written.

        The call has no deadline (a follower may follow for hours), but the node must answer
        within :data:`LOG_ANSWER_TIMEOUT_SECONDS`; the node's reading waits while this
        iterator is not consumed. Closing the iterator cancels the call.
        """
        channel, stub = await self._stub(node_id)
        ask = seal(self._identity, log_request_to_proto(request, **self._ids(node_id)))
        call = stub.StreamLogs(compute_pb2.StreamLogsRequest(ask=ask))
        try:
            # The node answers at once (headers) once it has checked the ask, output or not:
            # a node that does not, in that time, is stuck or gone, and nobody should wait.
            try:
                await asyncio.wait_for(call.initial_metadata(), LOG_ANSWER_TIMEOUT_SECONDS)
            except TimeoutError:
                raise Unavailable(
                    f"{channel.describe()} did not answer the log request within "
                    f"{LOG_ANSWER_TIMEOUT_SECONDS:.0f}s",
                    hint="the node may be overloaded or stuck; `bacalhau node list` shows it",
                    component="Transport",
                ) from None
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    return
                yield log_chunk_from_proto(msg)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, peer=channel.describe()) from e
        finally:
            call.cancel()

    async def close(self) -> None:
        """Close every channel."""
        await self.ask_batches.close()
        channels = [c for c, _ in self._channels.values()] + self._retired
        self._channels.clear()
        self._retired = []
        for ch in channels:
            await ch.close()

    async def __aenter__(self) -> ComputeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class OrchestratorClient:
    """What a compute node uses to reach a requester; signs everything it sends.

    Pinning the requester: with ``orchestrator_node_id`` the channel only accepts that node's
    certificate from the start. Without it (a seed or ``--orchestrator-address``: only an
    address), :meth:`identify` learns the ID soundly: the first connection is checked against
    the cluster CA and the address's host name, the node there signs a statement naming
    itself, its roles, this node and a fresh random nonce, the client verifies that signature
    against the node ID the statement names, and from then on the channel is pinned to that
    ID. Callbacks raise :class:`bacalhau.errors.Unavailable` (retryable) until the
    requester's ID is known, so results never go to a node that has not proven who it is.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        files: NodeFiles | TlsMaterial,
        address: str,
        orchestrator_node_id: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if orchestrator_node_id is not None:
            _check_node_id(orchestrator_node_id)
        self._identity = identity
        self._tls = tls_material(files)
        self._address = address
        self._orchestrator_node_id = orchestrator_node_id
        self._timeout = timeout
        self._channel: NodeChannel | None = None
        self._node_stub: Any = None
        self._orch_stub: Any = None

    @property
    def orchestrator_node_id(self) -> str | None:
        """The requester's node ID: given, or learned by :meth:`join`."""
        return self._orchestrator_node_id

    @property
    def address(self) -> str:
        return self._address

    def _open(self) -> NodeChannel:
        if self._channel is not None and self._channel.generation != self._tls.generation:
            self._channel.retire()  # renewed credentials: a new channel carries them
            self._channel = None
        if self._channel is None:
            self._channel = NodeChannel(self._address, self._tls, self._orchestrator_node_id)
            self._node_stub = node_pb2_grpc.NodeServiceStub(self._channel.channel)
            self._orch_stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel.channel)
        return self._channel

    def _pinned(self) -> NodeChannel:
        if self._orchestrator_node_id is None:
            # Retryable on purpose: callers queue the message and try again after joining.
            raise Unavailable(
                f"the requester at {self._address} has not proven its node ID yet",
                hint="identify the requester first, or configure its node ID",
                component="Transport",
            )
        return self._open()

    async def identify(self) -> NodeIdentityClaim:
        """Ask the node at this address who it is; pins the channel to the ID it proves."""
        channel = self._open()
        nonce = os.urandom(16)
        response = await unary_call(
            self._node_stub.Identify,
            node_pb2.IdentifyRequest(nonce=nonce),
            channel=channel,
            timeout=self._timeout,
        )
        sealed = response.statement
        expected = self._orchestrator_node_id or sealed.signer
        statement = open_sealed(sealed, node_pb2.NodeIdentityStatement, expected_signer=expected)
        if statement.node_id != sealed.signer:
            raise PermissionDenied(
                f"identity statement signed by {sealed.signer} names node {statement.node_id!r}"
            )
        if statement.caller_node_id != self._identity.node_id or statement.nonce != nonce:
            raise PermissionDenied(
                f"the identity statement from {sealed.signer} does not answer this challenge",
                hint="the answer was replayed or meant for another node",
            )
        known = {t.value: t for t in NodeType}
        roles = frozenset(known[r] for r in statement.roles if r in known)
        if self._orchestrator_node_id is None:
            # Pin from now on: reconnect so the TLS handshake itself checks the node ID.
            self._orchestrator_node_id = sealed.signer
            await channel.close()
            self._channel = None
        return NodeIdentityClaim(node_id=sealed.signer, roles=roles)

    async def report_executions(self, report: ExecutionReport) -> None:
        """Tell the requester which of its executions this node holds."""
        channel = self._pinned()
        await unary_call(
            self._orch_stub.ReportExecutions,
            orchestrator_pb2.ReportExecutionsRequest(
                report=seal(self._identity, execution_report_to_proto(report))
            ),
            channel=channel,
            timeout=self._timeout,
        )

    async def on_bid_complete(self, result: BidResult) -> None:
        channel = self._pinned()
        await unary_call(
            self._orch_stub.OnBidComplete,
            orchestrator_pb2.OnBidCompleteRequest(
                bid_result=seal(self._identity, bid_result_to_proto(result))
            ),
            channel=channel,
            timeout=self._timeout,
        )

    async def on_run_complete(self, result: RunResult) -> None:
        channel = self._pinned()
        await unary_call(
            self._orch_stub.OnRunComplete,
            orchestrator_pb2.OnRunCompleteRequest(
                run_result=seal(self._identity, run_result_to_proto(result))
            ),
            channel=channel,
            timeout=self._timeout,
        )

    async def on_compute_failure(self, failure: ComputeFailure) -> None:
        channel = self._pinned()
        await unary_call(
            self._orch_stub.OnComputeFailure,
            orchestrator_pb2.OnComputeFailureRequest(
                compute_failure=seal(self._identity, compute_failure_to_proto(failure))
            ),
            channel=channel,
            timeout=self._timeout,
        )

    async def deliver_callbacks(
        self, callbacks: Sequence[CallbackMessage]
    ) -> list[BacalhauError | None]:
        """Send callbacks in one signed call, in order: as many of the first ones as fit in
        one call (:data:`MAX_BATCH_ITEMS`, about :data:`MAX_BATCH_BYTES`; always the first).
        Returns the requester's outcome for each one sent (None: applied; else the error
        it refused that one with); the rest were not sent. A failed call raises."""
        channel = self._pinned()
        items: list[orchestrator_pb2.CallbackItem] = []
        size = 0
        for callback in callbacks[:MAX_BATCH_ITEMS]:
            item = callback_item_to_proto(callback)
            size += item.ByteSize()
            if items and size > MAX_BATCH_BYTES:
                break
            items.append(item)
        batch = orchestrator_pb2.CallbackBatch(node_id=self._identity.node_id, items=items)
        try:
            response = await unary_call(
                self._orch_stub.DeliverCallbacks,
                orchestrator_pb2.DeliverCallbacksRequest(batch=seal(self._identity, batch)),
                channel=channel,
                timeout=self._timeout,
            )
        except BacalhauError as err:
            if not _unimplemented(err):
                raise
            # A requester of a release before batches (a rolling upgrade): the first callback
            # alone, by its own call, rather than refusing callbacks it would accept.
            return [await self._deliver_one(callbacks[0])]
        if len(response.outcomes) != len(items):
            raise InternalError(
                f"{channel.describe()} answered {len(response.outcomes)} outcomes "
                f"for {len(items)} callbacks",
                component="Transport",
            )
        return [callback_outcome_from_proto(o) for o in response.outcomes]

    async def _deliver_one(self, callback: CallbackMessage) -> BacalhauError | None:
        """One callback by the call made for its kind: None once applied, the error when the
        requester refused it (an error that may pass is raised, as a failed call)."""
        try:
            if isinstance(callback, BidResult):
                await self.on_bid_complete(callback)
            elif isinstance(callback, RunResult):
                await self.on_run_complete(callback)
            else:
                await self.on_compute_failure(callback)
        except BacalhauError as err:
            if err.retryable:
                raise
            return err
        return None

    async def get_module(self, sha256: str) -> str:
        """The ``data:`` URL of the module the requester sent by reference (``sha256``: the
        hex digest it named). Unchecked: the caller compares it with the digest."""
        channel = self._pinned()
        response = await unary_call(
            self._orch_stub.GetModule,
            orchestrator_pb2.GetModuleRequest(sha256=bytes.fromhex(sha256)),
            channel=channel,
            timeout=self._timeout,
        )
        try:
            return str(response.data_url.decode("ascii"))
        except UnicodeDecodeError:
            raise InvalidContent(
                f"the module {sha256} from {channel.describe()} is not an ASCII data: URL",
                details={"SHA256": sha256},
            ) from None

    async def presign_result_upload(self, job_id: str, execution_id: str) -> str:
        """A pre-signed PUT URL for the execution's results in the requester's managed
        bucket (this node is the one asking: its TLS identity)."""
        channel = self._pinned()
        response = await unary_call(
            self._orch_stub.PresignResultUpload,
            orchestrator_pb2.PresignResultUploadRequest(job_id=job_id, execution_id=execution_id),
            channel=channel,
            timeout=self._timeout,
        )
        return str(response.url)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _unimplemented(err: BacalhauError) -> bool:
    """Whether the remote node does not serve the call at all (gRPC's UNIMPLEMENTED)."""
    cause = err.__cause__
    return isinstance(cause, grpc.aio.AioRpcError) and cause.code() == grpc.StatusCode.UNIMPLEMENTED
