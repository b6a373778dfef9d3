"""Adapters that let the two roles meet, in one process or across the network.

A hybrid node wires its orchestrator and compute components through the same interfaces two
processes would use: messages for the local node go straight to the local component, all
others through the mTLS gRPC clients.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from bacalhau.compute import ComputeEndpoint
from bacalhau.errors import Unavailable
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
from bacalhau.orchestrator import Orchestrator
from bacalhau.transport import ComputeClient, OrchestratorClient

log = logging.getLogger(__name__)


class RoutedComputeClient:
    """The orchestrator's view of compute nodes: the local endpoint or a gRPC client."""

    def __init__(
        self, remote: ComputeClient, *, local_id: str = "", local: ComputeEndpoint | None = None
    ) -> None:
        self._remote = remote
        self._local_id = local_id
        self._local = local

    def attach_local(self, node_id: str, endpoint: ComputeEndpoint) -> None:
        self._local_id, self._local = node_id, endpoint

    def register_node(self, node_id: str, address: str) -> None:
        if node_id != self._local_id:
            self._remote.register_node(node_id, address)

    def _local_for(self, node_id: str) -> ComputeEndpoint | None:
        return self._local if node_id == self._local_id else None

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        if (local := self._local_for(node_id)) is not None:
            # In the same process the callbacks cost no round trip: they come as they do
            # without an answer linger, and the answer carries none.
            if request.answer_linger:
                request = dataclasses.replace(request, answer_linger=0.0)
            await local.ask_for_bid(self._local_id, request)
            return None
        return await self._remote.ask_for_bid(node_id, request)

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        if (local := self._local_for(node_id)) is not None:
            await local.bid_accepted(self._local_id, decision)
        else:
            await self._remote.bid_accepted(node_id, decision)

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        if (local := self._local_for(node_id)) is not None:
            await local.bid_rejected(self._local_id, decision)
        else:
            await self._remote.bid_rejected(node_id, decision)

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        if (local := self._local_for(node_id)) is not None:
            await local.cancel_execution(self._local_id, request)
        else:
            await self._remote.cancel_execution(node_id, request)

    async def withdraw_queued(self, node_id: str, request: CancelExecutionRequest) -> str | None:
        if (local := self._local_for(node_id)) is not None:
            return await local.withdraw_queued(self._local_id, request)
        return await self._remote.withdraw_queued(node_id, request)

    def stream_logs(self, node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        if (local := self._local_for(node_id)) is not None:
            return local.stream_logs(self._local_id, request)
        return self._remote.stream_logs(node_id, request)


class RequesterLinks:
    """The compute node's way to its requesters: the in-process orchestrator (hybrid node)
    and gRPC clients to remote requesters, each pinned to the node ID it proved.

    A callback for a requester this node has not reached yet raises a retryable
    :class:`~bacalhau.errors.Unavailable`, so the outbox keeps it until the requester is
    identified.
    """

    def __init__(self, *, local: Orchestrator | None = None, local_id: str = "") -> None:
        self._local = local
        self._local_id = local_id if local is not None else ""
        self._remote: dict[str, OrchestratorClient] = {}

    def add_remote(self, requester_id: str, client: OrchestratorClient) -> None:
        """Send ``requester_id``'s callbacks through ``client`` (pinned to it) from now on."""
        self._remote[requester_id] = client

    def requester_ids(self) -> list[str]:
        """The requesters this node can reach now."""
        return [*((self._local_id,) if self._local_id else ()), *self._remote]

    def _target(self, requester_id: str) -> Orchestrator | OrchestratorClient:
        if self._local is not None and requester_id == self._local_id:
            return self._local
        remote = self._remote.get(requester_id)
        if remote is None:
            raise Unavailable(
                f"requester {requester_id} has not been reached yet",
                hint="the compute node identifies its requesters at their seed addresses",
                component="Compute",
            )
        return remote

    async def deliver_callbacks(
        self, requester_id: str, callbacks: Sequence[BidResult | RunResult | ComputeFailure]
    ) -> Sequence[BaseException | None]:
        """Callbacks for ``requester_id`` in one call (the compute role's
        OrchestratorCallbacks): the in-process orchestrator applies them all; a remote one
        gets as many of the first as fit in one call."""
        target = self._target(requester_id)
        if isinstance(target, OrchestratorClient):
            return await target.deliver_callbacks(callbacks)
        return await target.on_callbacks(callbacks)

    async def report_executions(self, requester_id: str, report: ExecutionReport) -> None:
        await self._target(requester_id).report_executions(report)

    async def get_module(self, requester_id: str, sha256: str) -> str:
        """A module ``requester_id`` sent by reference (the compute role's ModuleSource)."""
        return await self._target(requester_id).get_module(sha256)

    async def presign_result_upload(self, requester_id: str, job_id: str, execution_id: str) -> str:
        """Where the s3managed results of ``execution_id`` go: a URL ``requester_id`` signs
        for this node's upload."""
        target = self._target(requester_id)
        if isinstance(target, OrchestratorClient):
            return await target.presign_result_upload(job_id, execution_id)
        # The in-process requester: this hybrid node's compute role is the one asking.
        return await target.presign_result_upload(self._local_id, job_id, execution_id)
