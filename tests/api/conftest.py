"""Fixtures: an ApiServer on a free loopback port, in front of either the in-memory
orchestrator (whose test drivers move jobs along) or the real one (SQLite store, scheduler,
no compute nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bacalhau.api import ApiServer
from bacalhau.errors import Unavailable
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    CancelExecutionRequest,
    NodeInfo,
    NodeType,
)
from bacalhau.orchestrator import Orchestrator, OrchestratorAPI
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.orchestrator.node_view import StaticNodeView

AGENT_CONFIG = {"API": {"Port": 1234}, "Orchestrator": {"Auth": {"Token": "s3cret"}}}


class NoComputeNodes:
    """A compute transport for a requester with no compute node: every send fails."""

    def register_node(self, node_id: str, address: str) -> None:
        pass

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> None:
        raise Unavailable(f"compute node {node_id} is not reachable")

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        raise Unavailable(f"compute node {node_id} is not reachable")

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        raise Unavailable(f"compute node {node_id} is not reachable")

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        raise Unavailable(f"compute node {node_id} is not reachable")


@pytest.fixture
def orch() -> MemoryOrchestrator:
    return MemoryOrchestrator()


@pytest.fixture
async def server(orch: MemoryOrchestrator) -> AsyncIterator[ApiServer]:
    api: OrchestratorAPI = orch
    async with ApiServer(api, host="127.0.0.1", port=0, agent_config=AGENT_CONFIG) as srv:
        yield srv


@pytest.fixture
async def http(server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


@pytest.fixture
async def real_orch(tmp_path: Path) -> AsyncIterator[Orchestrator]:
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with Orchestrator(
        node_info=info,
        data_dir=tmp_path / "requester",
        compute=NoComputeNodes(),
        node_view=StaticNodeView(),
    ) as o:
        yield o


@pytest.fixture
async def real_server(real_orch: Orchestrator) -> AsyncIterator[ApiServer]:
    async with ApiServer(real_orch, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture(params=["memory", "real"])
async def any_http(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session against a server backed by each orchestrator in turn."""
    if request.param == "memory":
        async with (
            ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0) as srv,
            aiohttp.ClientSession(base_url=srv.url) as session,
        ):
            yield session
        return
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info,
            data_dir=tmp_path / "req",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as o,
        ApiServer(o, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as session,
    ):
        yield session
