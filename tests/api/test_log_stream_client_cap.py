"""One client holds at most ``log_streams_per_client_max`` log streams, across both APIs:
one more is refused as too many requests (REST 429, gRPC ``RESOURCE_EXHAUSTED``,
``TooManyRequests``) while other clients still get theirs. A client is a user when the API
has users, else an address."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import ApiServer, Authorizer, GrpcApiServer
from bacalhau.config import ApiUserConfig
from bacalhau.errors import TooManyRequests
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.test_api_jobs import spec
from tests.api.test_log_stream_cap import refusal, until
from tests.orchestrator.node_view import StaticNodeView

PER_CLIENT = 2
USERS = {"alice": "key-of-alice-0001", "bob": "key-of-bob-00001"}


@dataclass
class Served:
    orch: Orchestrator
    rest: str
    grpc_address: str
    job_id: str


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {USERS[user]}"}


async def _requester(tmp_path: Path, authorizer: Authorizer | None) -> AsyncIterator[Served]:
    info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info,
            data_dir=tmp_path / "requester",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
            log_streams_max=50,
            log_streams_per_client_max=PER_CLIENT,
        ) as orch,
        ApiServer(orch, host="127.0.0.1", port=0, authorizer=authorizer) as rest,
        GrpcApiServer(orch, host="127.0.0.1", port=0, authorizer=authorizer) as grpc_api,
    ):
        job = spec()
        job["Tasks"][0]["Timeouts"] = {"QueueTimeout": 600}  # queued: followers wait with it
        headers = bearer("alice") if authorizer else {}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.put(f"{rest.url}/api/v1/orchestrator/jobs", json={"Job": job}) as r,
        ):
            assert r.status == 200, await r.text()
            job_id = (await r.json())["JobID"]
        yield Served(orch, rest.url, grpc_api.address, job_id)


@pytest.fixture
async def with_users(tmp_path: Path) -> AsyncIterator[Served]:
    users = [ApiUserConfig(api_key=k, alias=u, actions=("*",)) for u, k in USERS.items()]
    async for served in _requester(tmp_path, Authorizer(users)):
        yield served


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in _requester(tmp_path, None):
        yield served


def grpc_follow(jobs: api_pb2_grpc.JobServiceStub, served: Served, user: str = "") -> Any:
    metadata = (("authorization", f"Bearer {USERS[user]}"),) if user else None
    return jobs.StreamJobLogs(
        api_pb2.StreamJobLogsRequest(job_id=served.job_id, follow=True), metadata=metadata
    )


async def test_a_user_past_their_share_is_refused_and_others_are_not(with_users: Served) -> None:
    served = with_users
    logs = f"{served.rest}/api/v1/orchestrator/jobs/{served.job_id}/logs"
    async with (
        grpc.aio.insecure_channel(served.grpc_address) as channel,
        aiohttp.ClientSession() as http,
    ):
        jobs = api_pb2_grpc.JobServiceStub(channel)
        # Alice's two: one over gRPC, one over REST's WebSocket; both wait for a node.
        held = grpc_follow(jobs, served, "alice")
        read = asyncio.ensure_future(held.read())
        ws = await http.ws_connect(f"{logs}?follow=true", headers=bearer("alice"))
        await until(lambda: served.orch.log_streams_open == PER_CLIENT)

        err = await refusal(grpc_follow(jobs, served, "alice"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        md = dict(err.trailing_metadata() or ())
        assert md["bacalhau-error-code"] == TooManyRequests.code
        assert "user 'alice' already has 2 log streams open" in err.details()
        async with http.get(logs, headers=bearer("alice")) as plain:
            assert plain.status == 429
            body = await plain.json()
        assert body["Code"] == "TooManyRequests"
        assert "log_streams_per_client_max" in body["Message"] and body["Hint"]

        # Bob is another client: his stream is taken while Alice holds her share.
        bobs = grpc_follow(jobs, served, "bob")
        bobs_read = asyncio.ensure_future(bobs.read())
        await until(lambda: served.orch.log_streams_open == PER_CLIENT + 1)

        # A stream Alice closes gives her a place again.
        await ws.close()
        await until(lambda: served.orch.log_streams_open == PER_CLIENT)
        again = grpc_follow(jobs, served, "alice")
        again_read = asyncio.ensure_future(again.read())
        await until(lambda: served.orch.log_streams_open == PER_CLIENT + 1)
        for call in (held, bobs, again):
            call.cancel()
        for task in (read, bobs_read, again_read):
            task.cancel()
        await until(lambda: served.orch.log_streams_open == 0)


async def test_on_an_open_api_a_client_is_its_address(open_api: Served) -> None:
    served = open_api
    logs = f"{served.rest}/api/v1/orchestrator/jobs/{served.job_id}/logs?follow=true"
    # 127.0.0.2 is this machine too, seen by the server as another address.
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession() as here, aiohttp.ClientSession(connector=other) as there:
        mine = [await here.ws_connect(logs) for _ in range(PER_CLIENT)]
        await until(lambda: served.orch.log_streams_open == PER_CLIENT)
        async with here.ws_connect(logs) as refused:
            frame = json.loads((await refused.receive()).data)
        assert frame["code"] == "TooManyRequests"
        assert "client 127.0.0.1 already has 2" in frame["error"]
        theirs = await there.ws_connect(logs)
        await until(lambda: served.orch.log_streams_open == PER_CLIENT + 1)
        for ws in (*mine, theirs):
            await ws.close()
        await until(lambda: served.orch.log_streams_open == 0)
