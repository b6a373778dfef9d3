from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bacalhau.api import ApiServer
from bacalhau.client import AsyncClient
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.orchestrator.node_view import StaticNodeView


@pytest.fixture
def orch() -> MemoryOrchestrator:
    return MemoryOrchestrator()


@pytest.fixture
async def server(orch: MemoryOrchestrator) -> AsyncIterator[ApiServer]:
    async with ApiServer(orch, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url) as c:
        yield c


@pytest.fixture
async def real_client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info,
            data_dir=tmp_path / "req",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as o,
        ApiServer(o, host="127.0.0.1", port=0) as srv,
        AsyncClient(srv.url) as c,
    ):
        yield c


@pytest.fixture
def threaded() -> Iterator[ServerThread]:
    st = ServerThread(MemoryOrchestrator()).start()
    try:
        yield st
    finally:
        st.stop()
