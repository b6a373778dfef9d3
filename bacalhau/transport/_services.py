"""gRPC servicers: trust checks, conversion, then the role's handler.

Each call first learns the caller's node ID from its TLS certificate. Signed messages are then
verified against that node (signature, signer == TLS peer, payload node ID == signer; for a
requester's commands also: addressed to this node) before they are converted and handed over.
Whether the sender may command this node at all is the handler's decision (the compute role
keeps its trusted requesters). Failures end the call through :mod:`._errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from google.protobuf.message import DecodeError

from bacalhau._proto.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from bacalhau._proto.v1.types_pb2 import SignedPayload
from bacalhau.errors import BacalhauError, InvalidRequest, NotFound, PermissionDenied
from bacalhau.identity import NodeIdentity
from bacalhau.models import AskAnswer, NodeType
from bacalhau.transport._answers import checked_callback_item
from bacalhau.transport._ask_batches import MAX_BATCH_ASKS as MAX_ASKS_SENT
from bacalhau.transport._convert_messages import (
    CallbackMessage,
    ask_for_bid_from_proto,
    bid_decision_from_proto,
    bid_result_from_proto,
    callback_item_to_proto,
    callback_outcome_to_proto,
    cancel_from_proto,
    compute_failure_from_proto,
    execution_report_from_proto,
    log_chunk_to_proto,
    log_request_from_proto,
    run_result_from_proto,
)
from bacalhau.transport._errors import abort_with, unexpected, written
from bacalhau.transport._handlers import ComputeHandler, OrchestratorHandler, RunResultRefusals
from bacalhau.transport._peer import peer_node_id
from bacalhau.transport._signing import check_addressee, check_speaker, open_sealed, seal

#: The signed payloads of a requester's commands to a compute node.
_Command = TypeVar(
    "_Command",
    compute_pb2.BidAsk,
    compute_pb2.BidAsks,
    compute_pb2.BidAcceptance,
    compute_pb2.BidRejection,
    compute_pb2.ExecutionCancellation,
    compute_pb2.ExecutionWithdrawal,
    compute_pb2.LogStreamAsk,
)

log = logging.getLogger(__name__)

#: A module is named by the SHA-256 of its data: URL.
_SHA256_BYTES = 32

#: The most callbacks one DeliverCallbacks call may carry (senders stay well under it).
MAX_BATCH_ITEMS = 1024
#: The most asks one AskForBids call may carry (a requester sends at most half as many).
MAX_BATCH_ASKS = 2 * MAX_ASKS_SENT

#: Identify nonces: long enough to never repeat, short enough to bound what a peer can make us sign.
_NONCE_MIN, _NONCE_MAX = 16, 64


async def _fail(context: Any, exc: Exception, method: str) -> NoReturn:
    err = exc if isinstance(exc, BacalhauError) else unexpected(exc, method)
    await abort_with(context, err)


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    """Serves ComputeService on a compute node."""

    def __init__(self, handler: ComputeHandler, *, identity: NodeIdentity) -> None:
        self._handler = handler
        self._identity = identity
        self._node_id = identity.node_id

    def _open(
        self, context: Any, envelope: Any, message_type: type[_Command], what: str
    ) -> tuple[str, _Command]:
        """The TLS peer and its verified command: signed by the peer, naming the peer as
        the requester and this node as the receiver."""
        peer = peer_node_id(context)
        msg = open_sealed(envelope, message_type, expected_signer=peer)
        check_speaker(msg.requester_node_id, peer, what)
        check_addressee(msg.compute_node_id, self._node_id, what)
        return peer, msg

    async def AskForBid(
        self, request: compute_pb2.AskForBidRequest, context: Any
    ) -> compute_pb2.AskForBidResponse:
        try:
            source, msg = self._open(context, request.bid_ask, compute_pb2.BidAsk, "bid ask")
            answer = await self._ask(source, msg)
            if answer is None or not answer.callbacks:
                return compute_pb2.AskForBidResponse()
            return compute_pb2.AskForBidResponse(
                callbacks=self._sealed(answer.callbacks), callback_seqs=answer.seqs
            )
        except Exception as e:
            await _fail(context, e, "AskForBid")

    async def AskForBids(
        self, request: compute_pb2.AskForBidsRequest, context: Any
    ) -> compute_pb2.AskForBidsResponse:
        """Every ask of the batch handled as :meth:`AskForBid` handles one, concurrently;
        one ask's error is its own outcome, not the call's."""
        try:
            source, batch = self._open(context, request.bid_asks, compute_pb2.BidAsks, "bid asks")
            if len(batch.asks) > MAX_BATCH_ASKS:
                raise InvalidRequest(
                    f"{len(batch.asks)} asks in one call (at most {MAX_BATCH_ASKS})",
                    component="Transport",
                )
            handled = await asyncio.gather(
                *(self._batched_ask(source, msg) for msg in batch.asks), return_exceptions=True
            )
            response = compute_pb2.AskForBidsResponse()
            callbacks: list[CallbackMessage] = []
            for outcome in handled:
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome  # cancelled: the call as a whole
                    err = (
                        outcome
                        if isinstance(outcome, BacalhauError)
                        else unexpected(outcome, "AskForBids")
                    )
                    response.outcomes.add(error_code=err.code, message=err.message, hint=err.hint)
                    response.answer_sizes.append(0)
                    continue
                response.outcomes.add()
                answered = outcome.callbacks if outcome is not None else []
                response.answer_sizes.append(len(answered))
                if outcome is not None:
                    callbacks.extend(answered)
                    response.callback_seqs.extend(outcome.seqs)
            if callbacks:
                response.callbacks.CopyFrom(self._sealed(callbacks))
            return response
        except Exception as e:
            await _fail(context, e, "AskForBids")

    def _sealed(self, callbacks: Sequence[CallbackMessage]) -> SignedPayload:
        """An answer's callbacks, signed as DeliverCallbacks signs a batch: the requester
        checks them the same way."""
        batch = orchestrator_pb2.CallbackBatch(
            node_id=self._node_id, items=[callback_item_to_proto(c) for c in callbacks]
        )
        return seal(self._identity, batch)

    async def _batched_ask(self, source: str, msg: compute_pb2.BidAsk) -> AskAnswer | None:
        """One ask of a batch: it speaks for the batch's signer, to this node."""
        check_speaker(msg.requester_node_id, source, "bid ask")
        check_addressee(msg.compute_node_id, self._node_id, "bid ask")
        return await self._ask(source, msg)

    async def _ask(self, source: str, msg: compute_pb2.BidAsk) -> AskAnswer | None:
        ask = ask_for_bid_from_proto(msg)
        if ask.execution.node_id != self._node_id:
            # A pinned channel cannot deliver it here by accident: refuse to run an
            # execution the requester attributes to another node.
            raise InvalidRequest(
                f"execution {ask.execution.id} is assigned to node "
                f"{ask.execution.node_id!r}, not to this node ({self._node_id})",
                component="Transport",
            )
        return await self._handler.ask_for_bid(source, ask)

    async def BidAccepted(
        self, request: compute_pb2.BidAcceptedRequest, context: Any
    ) -> compute_pb2.BidAcceptedResponse:
        try:
            source, msg = self._open(
                context, request.bid_acceptance, compute_pb2.BidAcceptance, "bid acceptance"
            )
            await self._handler.bid_accepted(source, bid_decision_from_proto(msg))
            return compute_pb2.BidAcceptedResponse()
        except Exception as e:
            await _fail(context, e, "BidAccepted")

    async def BidRejected(
        self, request: compute_pb2.BidRejectedRequest, context: Any
    ) -> compute_pb2.BidRejectedResponse:
        try:
            source, msg = self._open(
                context, request.bid_rejection, compute_pb2.BidRejection, "bid rejection"
            )
            await self._handler.bid_rejected(source, bid_decision_from_proto(msg))
            return compute_pb2.BidRejectedResponse()
        except Exception as e:
            await _fail(context, e, "BidRejected")

    async def CancelExecution(
        self, request: compute_pb2.CancelExecutionRequest, context: Any
    ) -> compute_pb2.CancelExecutionResponse:
        try:
            source, msg = self._open(
                context, request.cancellation, compute_pb2.ExecutionCancellation, "cancellation"
            )
            await self._handler.cancel_execution(source, cancel_from_proto(msg))
            return compute_pb2.CancelExecutionResponse()
        except Exception as e:
            await _fail(context, e, "CancelExecution")

    async def WithdrawQueued(
        self, request: compute_pb2.WithdrawQueuedRequest, context: Any
    ) -> compute_pb2.WithdrawQueuedResponse:
        try:
            source, msg = self._open(
                context, request.withdrawal, compute_pb2.ExecutionWithdrawal, "withdrawal"
            )
            state = await self._handler.withdraw_queued(source, cancel_from_proto(msg))
            return compute_pb2.WithdrawQueuedResponse(withdrawn=state is None, state=state or "")
        except Exception as e:
            await _fail(context, e, "WithdrawQueued")

    # Writes with context.write rather than yielding (the stubs type only the latter): a
    # write under a caller that left fails here, quietly, not in gRPC's core (see written).
    async def StreamLogs(  # type: ignore[override]
        self, request: compute_pb2.StreamLogsRequest, context: Any
    ) -> None:
        # Each write waits for gRPC's flow-control window: a slow reader slows only the
        # reading of the files, never the workload. A caller that goes away cancels the call,
        # which closes the reader (and its files) through the generator's finally.
        try:
            source, msg = self._open(context, request.ask, compute_pb2.LogStreamAsk, "logs ask")
            chunks = self._handler.stream_logs(source, log_request_from_proto(msg))
        except Exception as e:
            await _fail(context, e, "StreamLogs")
        # Headers now, output or not: the requester knows this node is serving the request
        # (it gives up on a node that stays silent; see ComputeClient.stream_logs).
        await context.send_initial_metadata(())
        try:
            async for chunk in chunks:
                if not await written(context, log_chunk_to_proto(chunk)):
                    return  # the caller left
        except Exception as e:
            await _fail(context, e, "StreamLogs")
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Serves OrchestratorService on a requester node.

    ``module_requests`` counts GetModule calls by outcome (``served``, ``not_found``,
    ``refused``): how often compute nodes had to fetch a module sent by reference.
    """

    def __init__(self, handler: OrchestratorHandler) -> None:
        self._handler = handler
        self.module_requests: Counter[str] = Counter()

    async def OnBidComplete(
        self, request: orchestrator_pb2.OnBidCompleteRequest, context: Any
    ) -> orchestrator_pb2.OnBidCompleteResponse:
        try:
            peer = peer_node_id(context)
            msg = open_sealed(request.bid_result, orchestrator_pb2.BidResult, expected_signer=peer)
            check_speaker(msg.node_id, peer, "bid result")
            await self._handler.on_bid_complete(bid_result_from_proto(msg))
            return orchestrator_pb2.OnBidCompleteResponse()
        except Exception as e:
            await _fail(context, e, "OnBidComplete")

    async def OnRunComplete(
        self, request: orchestrator_pb2.OnRunCompleteRequest, context: Any
    ) -> orchestrator_pb2.OnRunCompleteResponse:
        try:
            peer = peer_node_id(context)
            try:
                msg = open_sealed(
                    request.run_result, orchestrator_pb2.RunResult, expected_signer=peer
                )
                check_speaker(msg.node_id, peer, "run result")
            except PermissionDenied as refused:
                try:
                    # Unverified: it only says which execution the sender meant.
                    meant = orchestrator_pb2.RunResult.FromString(request.run_result.payload)
                    execution_id = meant.execution_id
                except DecodeError:
                    execution_id = ""
                await self._report_refused(peer, execution_id, refused)
                raise
            await self._handler.on_run_complete(run_result_from_proto(msg))
            return orchestrator_pb2.OnRunCompleteResponse()
        except Exception as e:
            await _fail(context, e, "OnRunComplete")

    async def DeliverCallbacks(
        self, request: orchestrator_pb2.DeliverCallbacksRequest, context: Any
    ) -> orchestrator_pb2.DeliverCallbacksResponse:
        try:
            peer = peer_node_id(context)
            try:
                batch = open_sealed(
                    request.batch, orchestrator_pb2.CallbackBatch, expected_signer=peer
                )
                check_speaker(batch.node_id, peer, "callback batch")
            except PermissionDenied as refused:
                await self._report_refused_batch(peer, request.batch.payload, refused)
                raise
            if len(batch.items) > MAX_BATCH_ITEMS:
                raise InvalidRequest(
                    f"a callback batch holds at most {MAX_BATCH_ITEMS} items, "
                    f"not {len(batch.items)}",
                    component="Transport",
                )
            outcomes: list[BacalhauError | None] = [None] * len(batch.items)
            positions: list[int] = []
            callbacks: list[CallbackMessage] = []
            for i, item in enumerate(batch.items):
                try:
                    callbacks.append(checked_callback_item(peer, item))
                    positions.append(i)
                except PermissionDenied as refused:
                    # As for a single run result: a refused one counts against its sender.
                    if item.WhichOneof("callback") == "run_result":
                        await self._report_refused(peer, item.run_result.execution_id, refused)
                    outcomes[i] = refused
                except BacalhauError as err:
                    outcomes[i] = err
            applied = await self._handler.on_callbacks(callbacks) if callbacks else []
            for i, result in zip(positions, applied, strict=True):
                if result is not None and not isinstance(result, BacalhauError):
                    result = unexpected(result, "DeliverCallbacks")
                outcomes[i] = result
            return orchestrator_pb2.DeliverCallbacksResponse(
                outcomes=[callback_outcome_to_proto(o) for o in outcomes]
            )
        except Exception as e:
            await _fail(context, e, "DeliverCallbacks")

    async def _report_refused_batch(
        self, peer: str, payload: bytes, refused: PermissionDenied
    ) -> None:
        """A refused batch: each run result it holds is reported as refused (as a single
        refused run result is); one that does not even parse is reported once, unnamed."""
        try:
            # Unverified: it only says which executions the sender meant.
            items = orchestrator_pb2.CallbackBatch.FromString(payload).items
        except DecodeError:
            await self._report_refused(peer, "", refused)
            return
        for item in items:
            if item.WhichOneof("callback") == "run_result":
                await self._report_refused(peer, item.run_result.execution_id, refused)

    async def _report_refused(
        self, peer: str, execution_id: str, refused: PermissionDenied
    ) -> None:
        """Tell a handler that wants to know of a refused run result (a false proposal
        counts against its sender); the refusal itself still goes back to the caller."""
        if not isinstance(self._handler, RunResultRefusals):
            return
        try:
            await self._handler.on_refused_run_result(peer, execution_id, refused.message)
        except Exception:
            log.exception("recording a refused run result from %s failed", peer)

    async def OnComputeFailure(
        self, request: orchestrator_pb2.OnComputeFailureRequest, context: Any
    ) -> orchestrator_pb2.OnComputeFailureResponse:
        try:
            peer = peer_node_id(context)
            msg = open_sealed(
                request.compute_failure, orchestrator_pb2.ComputeFailure, expected_signer=peer
            )
            check_speaker(msg.node_id, peer, "compute failure")
            await self._handler.on_compute_failure(compute_failure_from_proto(msg))
            return orchestrator_pb2.OnComputeFailureResponse()
        except Exception as e:
            await _fail(context, e, "OnComputeFailure")

    async def ReportExecutions(
        self, request: orchestrator_pb2.ReportExecutionsRequest, context: Any
    ) -> orchestrator_pb2.ReportExecutionsResponse:
        try:
            peer = peer_node_id(context)
            msg = open_sealed(
                request.report, orchestrator_pb2.ExecutionReport, expected_signer=peer
            )
            check_speaker(msg.node_id, peer, "execution report")
            await self._handler.report_executions(execution_report_from_proto(msg))
            return orchestrator_pb2.ReportExecutionsResponse()
        except Exception as e:
            await _fail(context, e, "ReportExecutions")

    async def GetModule(
        self, request: orchestrator_pb2.GetModuleRequest, context: Any
    ) -> orchestrator_pb2.GetModuleResponse:
        try:
            peer = peer_node_id(context)
            if len(request.sha256) != _SHA256_BYTES:
                raise InvalidRequest(
                    f"a module is asked for by its {_SHA256_BYTES}-byte SHA-256, "
                    f"not {len(request.sha256)} bytes",
                    component="Transport",
                )
            try:
                url = await self._handler.get_module(request.sha256.hex())
            except NotFound:
                self.module_requests["not_found"] += 1
                raise
            self.module_requests["served"] += 1
            log.debug("module %s sent to %s", request.sha256.hex()[:12], peer)
            return orchestrator_pb2.GetModuleResponse(data_url=url.encode("ascii"))
        except Exception as e:
            if not isinstance(e, NotFound):
                self.module_requests["refused"] += 1
            await _fail(context, e, "GetModule")

    async def PresignResultUpload(
        self, request: orchestrator_pb2.PresignResultUploadRequest, context: Any
    ) -> orchestrator_pb2.PresignResultUploadResponse:
        try:
            peer = peer_node_id(context)
            url = await self._handler.presign_result_upload(
                peer, request.job_id, request.execution_id
            )
            return orchestrator_pb2.PresignResultUploadResponse(url=url)
        except Exception as e:
            await _fail(context, e, "PresignResultUpload")


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    """Serves NodeService on every node: answers a challenge with a statement signed as
    ``identity``, naming the roles this node runs and the caller it answers."""

    def __init__(self, *, identity: NodeIdentity, roles: frozenset[NodeType]) -> None:
        self._identity = identity
        self._roles = roles

    async def Identify(
        self, request: node_pb2.IdentifyRequest, context: Any
    ) -> node_pb2.IdentifyResponse:
        try:
            peer = peer_node_id(context)
            if not _NONCE_MIN <= len(request.nonce) <= _NONCE_MAX:
                raise InvalidRequest(
                    f"identify nonce must be {_NONCE_MIN} to {_NONCE_MAX} bytes",
                    component="Transport",
                )
            statement = node_pb2.NodeIdentityStatement(
                node_id=self._identity.node_id,
                roles=sorted(role.value for role in self._roles),
                caller_node_id=peer,
                nonce=request.nonce,
            )
            return node_pb2.IdentifyResponse(statement=seal(self._identity, statement))
        except Exception as e:
            await _fail(context, e, "Identify")
