"""The SDK's gRPC client against a real requester's public gRPC API: the real orchestrator
(SQLite store, scheduler, no compute nodes) served by REST and gRPC at once, so both clients
are compared on the same jobs; the in-memory one where a job must finish on cue."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2_grpc
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.api._grpc import AgentServicer
from bacalhau.client import AsyncClient, AsyncGrpcClient, GrpcHistoryPage
from bacalhau.errors import (
    BadQuery,
    ConflictJobState,
    InvalidJobSpec,
    InvalidRequest,
    JobNotFound,
    NodeNotFound,
    NotFound,
    Unavailable,
)
from bacalhau.models import (
    Job,
    JobHistory,
    JobStateType,
    NodeInfo,
    NodeType,
    SpecConfig,
)
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_jobs import spec
from tests.orchestrator.node_view import StaticNodeView
from tests.self_signed import self_signed_localhost


@dataclass
class Both:
    """One real requester, reached by the REST client and the gRPC client."""

    orch: Orchestrator
    rest: AsyncClient
    grpc: AsyncGrpcClient


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[Both]:
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info,
            data_dir=tmp_path / "req",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as rest_server,
        GrpcApiServer(orch, host="127.0.0.1", port=0) as grpc_server,
        AsyncClient(rest_server.url) as rest,
        AsyncGrpcClient(grpc_server.address) as grpc,
    ):
        yield Both(orch, rest, grpc)


@pytest.fixture
async def memory(orch: MemoryOrchestrator) -> AsyncIterator[AsyncGrpcClient]:
    async with (
        GrpcApiServer(orch, host="127.0.0.1", port=0) as server,
        AsyncGrpcClient(server.address) as client,
    ):
        yield client


async def test_jobs_answer_the_same_models_as_the_rest_client(both: Both) -> None:
    job = Job.from_dict(spec(Name="first", Labels={"team": "a"}))
    submitted = await both.grpc.submit(job)
    assert submitted.job_id.startswith("j-") and submitted.evaluation_id
    over_grpc = await both.grpc.get_job(submitted.job_id[:8], history=True, executions=True)
    over_rest = await both.rest.get_job(submitted.job_id, history=True, executions=True)
    assert over_grpc.job.to_dict() == over_rest.job.to_dict()
    assert over_grpc.job.name == "first" and over_grpc.job.labels == {"team": "a"}
    assert over_grpc.history and over_grpc.history == over_rest.history
    assert over_grpc.executions == over_rest.executions
    assert await both.grpc.executions(submitted.job_id) == await both.rest.executions(
        submitted.job_id
    )
    page = await both.grpc.history(submitted.job_id)
    assert isinstance(page, GrpcHistoryPage)
    assert page.job is not None and page.job.id == submitted.job_id
    rest_page = await both.rest.history(submitted.job_id)
    assert page.items == rest_page.items
    # Both say alike whether more can come (this job has no node to run on: it may be over).
    assert bool(page.next_token) == (not page.job.state.is_terminal())
    # A dict submits as well, into the namespace given when the job names none.
    other = await both.grpc.submit(spec(Name="second"), namespace="team-b")
    assert (await both.grpc.get_job(other.job_id)).job.namespace == "team-b"


async def test_list_jobs_pages(both: Both) -> None:
    ids = [(await both.grpc.submit(spec(Name=f"job{i}"))).job_id for i in range(5)]
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = await both.grpc.list_jobs(limit=2, next_token=token, order_by="created_at")
        seen += [j.id for j in page.items]
        token = page.next_token
        if not token:
            break
    assert seen == ids
    newest = await both.grpc.list_jobs(limit=1, reverse=True)
    assert [j.id for j in newest.items] == ids[-1:]
    rest = await both.rest.list_jobs(limit=1, reverse=True)
    assert [j.to_dict() for j in newest.items] == [j.to_dict() for j in rest.items]


async def test_rerun_and_versions(both: Both) -> None:
    job_id = (await both.grpc.submit(spec(Name="again"))).job_id
    await both.grpc.stop_job(job_id)
    rerun = await both.grpc.rerun_job(job_id, "once more")
    assert rerun.job_id == job_id and rerun.job_version == 2 and rerun.evaluation_id
    versions = await both.grpc.job_versions(job_id)
    assert [v.version for v in versions] == [1, 2] and {v.name for v in versions} == {"again"}


async def test_errors_come_back_as_their_classes(both: Both) -> None:
    with pytest.raises(JobNotFound) as not_found:
        await both.grpc.get_job("j-00000000-dead")
    assert not_found.value.code == "NotFound" and not_found.value.component == "JobStore"
    assert not_found.value.hint == (
        "check the job ID or name with `bacalhau job list` (names are looked up in namespace "
        "default)"
    )
    with pytest.raises(NodeNotFound):
        await both.grpc.get_node("n-nobody")
    bad = spec()
    bad["Count"] = -3
    with pytest.raises(InvalidJobSpec) as invalid:
        await both.grpc.submit(bad)
    assert invalid.value.field == "Count"
    with pytest.raises(BadQuery) as order:
        await both.grpc.list_jobs(order_by="size")
    assert order.value.field == "order_by"
    with pytest.raises(BadQuery) as token:
        await both.grpc.history("j-any", next_token="not-a-seq")
    assert token.value.field == "next_token"


async def test_stop_and_a_finished_job_cannot_be_stopped(
    memory: AsyncGrpcClient, orch: MemoryOrchestrator
) -> None:
    running = (await memory.submit(spec())).job_id
    assert await memory.stop_job(running, "enough")
    stopped = (await memory.get_job(running)).job
    assert stopped.state == JobStateType.STOPPED and stopped.state_message == "enough"
    job_id = (await memory.submit(spec())).job_id
    ex = await orch.start_execution(job_id)
    await orch.complete_execution(ex)
    with pytest.raises(ConflictJobState):
        await memory.stop_job(job_id)


async def test_unknown_job_logs_raise_not_found(both: Both) -> None:
    with pytest.raises(NotFound):
        async for _ in both.grpc.logs("j-00000000-dead"):
            pass


async def test_an_unreachable_node_is_unavailable_with_a_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nobody listens once closed
    async with AsyncGrpcClient(f"127.0.0.1:{port}", timeout=10) as client:
        with pytest.raises(Unavailable) as info:
            await client.agent_alive()
    assert f"127.0.0.1:{port}" in info.value.message
    assert "BACALHAU_API_GRPC_PORT" in (info.value.hint or "")


async def test_nodes_and_agent(both: Both) -> None:
    own = both.orch.node_info().node_id
    nodes = await both.grpc.list_nodes()
    assert own in [n.info.node_id for n in nodes]
    node = await both.grpc.get_node(own)
    assert node.info.node_id == own and node.info.node_type == NodeType.REQUESTER
    over_rest = await both.rest.get_node(own)
    assert replace(node, last_seen_ns=0) == replace(over_rest, last_seen_ns=0)
    assert await both.grpc.agent_alive()
    assert (await both.grpc.agent_version()).git_version == "v1.5.2"
    me = await both.grpc.agent_node()
    assert me.info.node_id == own and me.info.node_type == NodeType.REQUESTER
    with pytest.raises(InvalidRequest) as info:
        await both.grpc.update_node(own, "promote")
    assert info.value.details["Field"] == "action"


async def test_wait_for_job_takes_the_job_and_executions_from_the_history(
    memory: AsyncGrpcClient, orch: MemoryOrchestrator
) -> None:
    job_id = (await memory.submit(spec())).job_id
    url = "http://127.0.0.1:6001/x.tar.gz"

    async def run_in_two_steps() -> None:
        await asyncio.sleep(0.1)
        ex = await orch.start_execution(job_id)
        await asyncio.sleep(0.1)
        await orch.complete_execution(
            ex, stdout="done\n", published=SpecConfig(type="urlDownload", params={"URL": url})
        )

    task = asyncio.create_task(run_in_two_steps())
    done = await memory.wait_for_job(job_id, timeout=20)
    await task
    assert done.job.state == JobStateType.COMPLETED
    assert [e.run_output.stdout for e in done.executions if e.run_output] == ["done\n"]
    assert [r.params["URL"] for r in await memory.results(job_id)] == [url]
    # Followed event by event, the wait sees every item once, in order.
    seen: list[JobHistory] = []
    again = await memory.wait_for_job(job_id, timeout=20, on_event=seen.append)
    assert again.job.state == JobStateType.COMPLETED
    assert [h.seq_num for h in seen] == sorted({h.seq_num for h in seen}) and seen


async def test_history_extras_over_the_client(
    memory: AsyncGrpcClient, orch: MemoryOrchestrator
) -> None:
    job_id = (await memory.submit(spec())).job_id
    first = await memory.history(job_id, include_executions=True)
    assert first.next_token and first.executions == []
    ex = await orch.start_execution(job_id)
    await orch.complete_execution(ex)
    last = await memory.history(
        job_id,
        next_token=first.next_token,
        wait=20,
        until_terminal=True,
        include_executions=True,
    )
    assert last.next_token == ""  # finished: nothing more will come
    assert last.job is not None and last.job.state == JobStateType.COMPLETED
    assert [e.id for e in last.executions] == [ex]


async def test_tls_when_the_api_is_reached_through_tls() -> None:
    """The node serves plaintext; behind TLS (here: the API's own servicer on a TLS port)
    the client verifies the server against the roots it is given."""
    cert, key = self_signed_localhost()
    server = grpc.aio.server()
    api_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(MemoryOrchestrator()), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    await server.start()
    try:
        async with AsyncGrpcClient(f"127.0.0.1:{port}", root_certificates=cert) as client:
            assert await client.agent_alive()
        # Plaintext against TLS, or TLS with other roots, cannot connect.
        async with AsyncGrpcClient(f"127.0.0.1:{port}", timeout=10) as plain:
            with pytest.raises(Unavailable):
                await plain.agent_alive()
        other, _ = self_signed_localhost()
        async with AsyncGrpcClient(
            f"127.0.0.1:{port}", root_certificates=other, timeout=10
        ) as untrusting:
            with pytest.raises(Unavailable):
                await untrusting.agent_alive()
    finally:
        await server.stop(None)
