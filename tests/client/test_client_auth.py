"""The SDK's clients send credentials as Bacalhau's do (from the environment by default), and
a refusal comes back as Unauthorized or Forbidden with a hint naming what to set."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bacalhau.api import ApiServer, Authorizer, GrpcApiServer
from bacalhau.client import (
    AsyncClient,
    AsyncDataClient,
    AsyncGrpcClient,
    Credentials,
)
from bacalhau.client._transport import Transport
from bacalhau.errors import Forbidden, InvalidRequest, Unauthorized
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import Blockstore
from tests.api.conftest import NoComputeNodes
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_auth import READER_PASSWORD, _users, key_of
from tests.api.test_api_jobs import spec
from tests.orchestrator.node_view import StaticNodeView

ENV = ("BACALHAU_API_KEY", "BACALHAU_API_USERNAME", "BACALHAU_API_PASSWORD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_credentials_come_from_the_environment_as_bacalhau_reads_them() -> None:
    assert not Credentials.from_env({})
    key = Credentials.from_env({"BACALHAU_API_KEY": "  secret-key-1234567890 \n"})
    assert key.header == "Bearer secret-key-1234567890"
    assert key.source == "BACALHAU_API_KEY"
    pair = Credentials.from_env(
        {"BACALHAU_API_USERNAME": "alice", "BACALHAU_API_PASSWORD": "pass word "}
    )
    assert pair.header == "Basic " + base64.b64encode(b"alice:pass word").decode()
    assert pair.describe() == "username alice"
    with pytest.raises(InvalidRequest, match="can't use both BACALHAU_API_KEY and"):
        Credentials.from_env({"BACALHAU_API_KEY": "k", "BACALHAU_API_PASSWORD": "p"})
    with pytest.raises(InvalidRequest, match="BACALHAU_API_USERNAME provided but not"):
        Credentials.from_env({"BACALHAU_API_USERNAME": "alice"})
    with pytest.raises(InvalidRequest, match="BACALHAU_API_PASSWORD provided but not"):
        Credentials.from_env({"BACALHAU_API_PASSWORD": "p"})


def test_credentials_never_show_their_secret() -> None:
    key = Credentials.api_key("2E8D7F5B3A9C41608D2E6B7F4A5C3D9E")
    assert "2E8D7F5B3A9C" not in repr(key) and key.describe() == "API key ...3D9E"
    pair = Credentials.basic("alice", "hunter2-hunter2")
    assert "hunter2" not in repr(pair) and "hunter2" not in pair.describe()


@pytest.fixture
async def urls(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A real requester (the log stream is the real orchestrator's) served by both APIs."""
    authorizer = Authorizer(_users())
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    with Blockstore(tmp_path / "blocks") as store:
        async with (
            Orchestrator(
                node_info=info,
                data_dir=tmp_path / "req",
                compute=NoComputeNodes(),
                node_view=StaticNodeView(),
            ) as real_orch,
            ApiServer(
                real_orch,
                host="127.0.0.1",
                port=0,
                authorizer=authorizer,
                content=BlockstoreContent(store),
            ) as rest,
            GrpcApiServer(real_orch, host="127.0.0.1", port=0, authorizer=authorizer) as grpc_api,
        ):
            yield rest.url, grpc_api.address


async def test_the_rest_client_sends_the_environment_s_credentials(
    urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rest, _ = urls
    monkeypatch.setenv("BACALHAU_API_KEY", key_of("write:job"))
    async with AsyncClient(rest) as client:
        job_id = (await client.submit(spec())).job_id
        with pytest.raises(Forbidden) as caught:
            await client.get_job(job_id)
    hint = caught.value.hint
    assert "API key ...6789 from BACALHAU_API_KEY lacks the capability read:job" in hint
    monkeypatch.delenv("BACALHAU_API_KEY")
    monkeypatch.setenv("BACALHAU_API_USERNAME", "reader")
    monkeypatch.setenv("BACALHAU_API_PASSWORD", READER_PASSWORD)
    async with AsyncClient(rest) as client:
        assert (await client.get_job(job_id)).job.id == job_id
    # Given credentials win over the environment's; none() sends none.
    async with AsyncClient(rest, credentials=Credentials.none()) as client:
        with pytest.raises(Unauthorized) as refused:
            await client.list_jobs()
    assert refused.value.hint.startswith("this API asks for credentials: set BACALHAU_API_KEY")


async def test_wrong_credentials_are_named_in_the_hint(urls: tuple[str, str]) -> None:
    rest, _ = urls
    wrong = Credentials.basic("reader", "not it", source="profile 'prod'")
    async with AsyncClient(rest, credentials=wrong) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.list_nodes()
    err = caught.value
    assert err.message == "Request Unauthorized: invalid basic auth credentials"
    assert err.hint.startswith(
        "the API refused the username reader from profile 'prod' "
        "(invalid basic auth credentials): check it, or set BACALHAU_API_KEY"
    )


async def test_logs_and_data_go_with_the_credentials_too(urls: tuple[str, str]) -> None:
    rest, _ = urls
    writer = Credentials.api_key(key_of("write:job"))
    async with AsyncClient(rest, credentials=writer) as client:
        job_id = (await client.submit(spec())).job_id
        with pytest.raises(Forbidden) as caught:
            async for _ in client.logs(job_id):
                pass
    assert "lacks the capability read:job" in caught.value.hint
    async with AsyncClient(rest, credentials=Credentials.none()) as client:
        with pytest.raises(Unauthorized):
            async for _ in client.logs(job_id):
                pass
    async with AsyncDataClient(rest, credentials=Credentials.none()) as data:
        with pytest.raises(Unauthorized):
            await data.ls("bafkqaaa")
    async with AsyncDataClient(rest, credentials=Credentials.api_key(key_of("read:job"))) as data:
        assert [e.cid for e in await data.ls("bafkqaaa")] == ["bafkqaaa"]


async def test_credentials_stay_with_the_api(unused_tcp_port: int, tmp_path: Path) -> None:
    """Results published elsewhere (a compute node, S3) are fetched without them."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"result")

    app = web.Application()
    app.router.add_get("/result", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        transport = Transport(
            "http://127.0.0.1:1", credentials=Credentials.api_key("k" * 24, source="test")
        )
        with (tmp_path / "out").open("wb") as out:
            await transport.download(f"http://127.0.0.1:{unused_tcp_port}/result", out, timeout=10)
        await transport.close()
    finally:
        await runner.cleanup()
    assert seen == [None]
    assert (tmp_path / "out").read_bytes() == b"result"


async def test_the_grpc_client_sends_them_in_metadata(
    urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, target = urls
    async with AsyncGrpcClient(target) as client:
        assert await client.agent_alive()
        with pytest.raises(Unauthorized) as caught:
            await client.list_jobs()
    assert "BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD" in caught.value.hint
    monkeypatch.setenv("BACALHAU_API_KEY", key_of("write:job"))
    async with AsyncGrpcClient(target) as client:
        job_id = (await client.submit(spec())).job_id
        with pytest.raises(Forbidden) as denied:
            await client.get_job(job_id)
        assert "from BACALHAU_API_KEY lacks the capability read:job" in denied.value.hint
        with pytest.raises(Forbidden):
            async for _ in client.logs(job_id):
                pass
    reader = Credentials.basic("reader", READER_PASSWORD)
    async with AsyncGrpcClient(target, credentials=reader) as client:
        assert (await client.get_job(job_id)).job.id == job_id


async def test_auth_status_is_the_same_through_both_apis(urls: tuple[str, str]) -> None:
    """Who the API takes the client for (REST's whoami, gRPC's WhoAmI): nobody without
    credentials, the user with them, and a refusal for wrong ones."""
    rest, target = urls
    given = [
        Credentials.none(),
        Credentials.basic("reader", READER_PASSWORD),
        Credentials.api_key(key_of("write:job")),
    ]
    for creds in given:
        async with (
            AsyncClient(rest, credentials=creds) as by_rest,
            AsyncGrpcClient(target, credentials=creds) as by_grpc,
        ):
            status = await by_grpc.auth_status()
            assert status == await by_rest.auth_status()
            assert status.auth_required and set(status.methods) == {"Basic", "Bearer"}
            assert (status.user is None) == (not creds)
    async with AsyncGrpcClient(target, credentials=given[2]) as client:
        user = (await client.auth_status()).user
        assert user is not None and user.method == "Bearer"
        assert user.capabilities == ("write:job",)
    wrong = Credentials.basic("reader", "not it")
    async with AsyncGrpcClient(target, credentials=wrong) as client:
        with pytest.raises(Unauthorized):
            await client.auth_status()


async def test_auth_status_of_an_open_api(orch: MemoryOrchestrator) -> None:
    async with (
        GrpcApiServer(orch, host="127.0.0.1", port=0) as srv,
        AsyncGrpcClient(srv.address) as client,
    ):
        status = await client.auth_status()
    assert not status.auth_required and status.methods == () and status.user is None


async def test_the_session_itself_carries_no_credentials(urls: tuple[str, str]) -> None:
    rest, _ = urls
    async with AsyncClient(rest, credentials=Credentials.api_key(key_of("read:job"))) as client:
        session: aiohttp.ClientSession = client._http.session()
        assert "Authorization" not in session.headers
        await client.list_jobs()
