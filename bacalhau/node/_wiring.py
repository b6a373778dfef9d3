"""Adapters that let the two roles meet, in one process or across the network.

A hybrid node wires its orchestrator and compute components through the same interfaces two
processes would use: messages for the local node go straight to the local component, all
others through the mTLS gRPC clients.
"""

from __future__ import annotations

import logging

from bacalhau.compute import ComputeEndpoint, RequesterTrust
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

    def _local_for(self, node_id: str) -> ComputeEndpoint | None:
        return self._local if node_id == self._local_id else None

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> None:
        if (local := self._local_for(node_id)) is not None:
            await local.ask_for_bid(self._local_id, request)
        else:
            await self._remote.ask_for_bid(node_id, request)

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


class RequesterLink:
    """The compute node's view of its requester: callbacks plus join/heartbeat.

    Either the in-process orchestrator (hybrid node) or the gRPC client to a remote one; both
    take the same messages, so the link only adds the requester ID check. With ``trust``, a
    remote requester that admits this node becomes trusted by the node ID it proved in its
    signed join decision (and commands arriving while a join is under way wait for it).
    """

    def __init__(
        self,
        *,
        local: Orchestrator | None = None,
        remote: OrchestratorClient | None = None,
        trust: RequesterTrust | None = None,
    ) -> None:
        target = local if remote is None else remote
        if target is None or (local is not None and remote is not None):
            raise ValueError("exactly one of local and remote is needed")
        self._target: Orchestrator | OrchestratorClient = target
        self._remote = remote
        self._trust = trust

    def _check(self, requester_id: str) -> None:
        remote = self._remote
        if remote is not None and remote.orchestrator_node_id not in (None, requester_id):
            # One requester per compute node for now: say so loudly rather than misroute.
            log.warning(
                "callback for requester %s sent to %s", requester_id, remote.orchestrator_node_id
            )

    async def on_bid_complete(self, requester_id: str, result: BidResult) -> None:
        self._check(requester_id)
        await self._target.on_bid_complete(result)

    async def on_run_complete(self, requester_id: str, result: RunResult) -> None:
        self._check(requester_id)
        await self._target.on_run_complete(result)

    async def on_compute_failure(self, requester_id: str, failure: ComputeFailure) -> None:
        self._check(requester_id)
        await self._target.on_compute_failure(failure)

    async def join(self, request: JoinRequest) -> JoinResponse:
        remote, trust = self._remote, self._trust
        if remote is None or trust is None:
            return await self._target.join(request)
        with trust.joining():
            response = await remote.join(request)
            requester_id = remote.orchestrator_node_id
            if response.accepted and requester_id is not None:
                # Granted inside ``joining`` so that commands waiting for it see it.
                trust.trust(requester_id, why=f"it admitted this node at {remote.address}")
        return response

    async def heartbeat(self, heartbeat: Heartbeat) -> None:
        await self._target.heartbeat(heartbeat)
