"""Adapters that let the two roles meet, in one process or across the network.

A hybrid node wires its orchestrator and compute components through the same interfaces two
processes would use: messages for the local node go straight to the local component, all
others through the mTLS gRPC clients.
"""

from __future__ import annotations

import logging

from bacalhau.compute import ComputeEndpoint
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Heartbeat,
    JoinRequest,
    JoinResponse,
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

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> None:
        if self._local is not None and node_id == self._local_id:
            await self._local.ask_for_bid(self._local_id, request)
        else:
            await self._remote.ask_for_bid(node_id, request)

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        if self._local is not None and node_id == self._local_id:
            await self._local.bid_accepted(self._local_id, decision)
        else:
            await self._remote.bid_accepted(node_id, decision)

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        if self._local is not None and node_id == self._local_id:
            await self._local.bid_rejected(self._local_id, decision)
        else:
            await self._remote.bid_rejected(node_id, decision)

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        if self._local is not None and node_id == self._local_id:
            await self._local.cancel_execution(self._local_id, request)
        else:
            await self._remote.cancel_execution(node_id, request)


class RequesterLink:
    """The compute node's view of its requester: callbacks plus join/heartbeat.

    Either the in-process orchestrator (hybrid node) or the gRPC client to a remote one.
    """

    def __init__(
        self, *, local: Orchestrator | None = None, remote: OrchestratorClient | None = None
    ) -> None:
        if (local is None) == (remote is None):
            raise ValueError("exactly one of local and remote is needed")
        self._local = local
        self._remote = remote

    def _check(self, requester_id: str) -> None:
        remote = self._remote
        if remote is not None and remote.orchestrator_node_id not in (None, requester_id):
            # One requester per compute node for now: say so loudly rather than misroute.
            log.warning(
                "callback for requester %s sent to %s", requester_id, remote.orchestrator_node_id
            )

    async def on_bid_complete(self, requester_id: str, result: BidResult) -> None:
        self._check(requester_id)
        if self._local is not None:
            await self._local.on_bid_complete(result)
        else:
            assert self._remote is not None
            await self._remote.on_bid_complete(result)

    async def on_run_complete(self, requester_id: str, result: RunResult) -> None:
        self._check(requester_id)
        if self._local is not None:
            await self._local.on_run_complete(result)
        else:
            assert self._remote is not None
            await self._remote.on_run_complete(result)

    async def on_compute_failure(self, requester_id: str, failure: ComputeFailure) -> None:
        self._check(requester_id)
        if self._local is not None:
            await self._local.on_compute_failure(failure)
        else:
            assert self._remote is not None
            await self._remote.on_compute_failure(failure)

    async def join(self, request: JoinRequest) -> JoinResponse:
        if self._local is not None:
            return await self._local.join(request)
        assert self._remote is not None
        return await self._remote.join(request)

    async def heartbeat(self, heartbeat: Heartbeat) -> None:
        if self._local is not None:
            await self._local.heartbeat(heartbeat)
        else:
            assert self._remote is not None
            await self._remote.heartbeat(heartbeat)
