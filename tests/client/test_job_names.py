"""The SDK's clients and jobs by name, against a real requester (REST and gRPC at once):
``submit(force=)``, ``diff_job``, and a client's namespace for the names it looks up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.client import AsyncClient, AsyncGrpcClient, Client, DiffResponse
from bacalhau.errors import JobSpecUnchanged, NotFound
from bacalhau.models import Job, NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.server_thread import ServerThread
from tests.api.test_api_jobs import spec
from tests.client.test_grpc_client import Both
from tests.orchestrator.node_view import StaticNodeView


def _requester(data_dir: Path) -> Orchestrator:
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    return Orchestrator(
        node_info=info, data_dir=data_dir, compute=NoComputeNodes(), node_view=StaticNodeView()
    )


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[Both]:
    async with (
        _requester(tmp_path / "req") as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as rest_server,
        GrpcApiServer(orch, host="127.0.0.1", port=0) as grpc_server,
        AsyncClient(rest_server.url) as rest,
        AsyncGrpcClient(grpc_server.address) as grpc,
    ):
        yield Both(orch, rest, grpc)


@pytest.mark.parametrize("over", ["rest", "grpc"])
async def test_submit_force_and_diff_job(both: Both, over: str) -> None:
    client: AsyncClient | AsyncGrpcClient = both.rest if over == "rest" else both.grpc
    name = f"sdk-{over}"
    first = await client.submit(Job.from_dict(spec(Name=name)))
    changed = Job.from_dict(spec(Name=name, Labels={"v": "2"}))
    diff = await client.diff_job(changed)
    assert isinstance(diff, DiffResponse) and diff.warnings == []
    assert "+Labels:" in diff.diff or "+  v: '2'" in diff.diff
    assert (await client.submit(changed)).job_id == first.job_id
    assert await client.diff_job(changed) == DiffResponse(diff="", warnings=[])
    with pytest.raises(JobSpecUnchanged) as refused:
        await client.submit(changed)
    assert "--force" in refused.value.hint
    again = await client.submit(changed, force=True)
    assert again.job_id == first.job_id
    assert [v.version for v in await client.job_versions(name)] == [1, 2, 3]
    with pytest.raises(NotFound):
        await client.diff_job(Job.from_dict(spec(Name=f"{name}-nobody")))


async def test_a_clients_namespace_is_where_it_looks_names_up(tmp_path: Path) -> None:
    async with (
        _requester(tmp_path / "req") as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as rest_server,
        GrpcApiServer(orch, host="127.0.0.1", port=0) as grpc_server,
        AsyncClient(rest_server.url) as default,
        AsyncClient(rest_server.url, namespace="dev") as dev,
        AsyncGrpcClient(grpc_server.address, namespace="dev") as dev_grpc,
    ):
        here = await default.submit(Job.from_dict(spec(Name="shared")))
        # The client's namespace applies to a job that names none.
        there = await dev.submit(Job.from_dict(spec(Name="shared")))
        assert here.job_id != there.job_id
        assert (await default.get_job("shared")).job.id == here.job_id
        assert (await dev.get_job("shared")).job.namespace == "dev"
        assert (await dev_grpc.get_job("shared")).job.id == there.job_id
        for client in (dev, dev_grpc):
            assert [e.job_id for e in await client.executions("shared")] == []
            assert (await client.history("shared")).items
            assert await client.results("shared") == []
        await dev_grpc.stop_job("shared", "enough")
        assert (await dev.get_job(there.job_id)).job.state.wire == "Stopped"
        assert (await default.get_job("shared")).job.state.wire != "Stopped"
        rerun = await dev.rerun_job("shared")
        assert (rerun.job_id, rerun.job_version) == (there.job_id, 2)
        diff = await dev_grpc.diff_job(Job.from_dict(spec(Name="shared", Priority=1)))
        assert "+Priority: 1" in diff.diff


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[ServerThread]:
    orch = _requester(tmp_path / "req")
    st = ServerThread(orch).start()
    st.run(orch.__aenter__())
    try:
        yield st
    finally:
        st.run(orch.__aexit__(None, None, None))
        st.stop()


def test_the_blocking_client(threaded: ServerThread) -> None:
    with Client(threaded.url) as client:
        first = client.submit(spec(Name="sync"))
        assert client.diff_job(spec(Name="sync")).diff == ""
        with pytest.raises(JobSpecUnchanged):
            client.submit(spec(Name="sync"))
        assert client.submit(spec(Name="sync"), force=True).job_id == first.job_id
        assert client.get_job("sync").job.version == 2
