"""Followers of job logs are capped (``log_streams_max``) across both APIs: one more is
refused as busy, with a status a client retries on, and a follower that leaves frees its
place. Followers that read nothing cannot hold every descriptor of the requester (and, through
it, of the compute nodes)."""

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
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.errors import Unavailable
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.test_api_jobs import spec
from tests.orchestrator.node_view import StaticNodeView

CAP = 3


@dataclass
class Served:
    orch: Orchestrator
    rest: str
    jobs: api_pb2_grpc.JobServiceStub
    job_id: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """A requester with no compute node: a submitted job waits to be placed, and a follower
    of it waits with it, holding its place."""
    info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info,
            data_dir=tmp_path / "requester",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
            log_streams_max=CAP,
        ) as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as rest,
        GrpcApiServer(orch, host="127.0.0.1", port=0) as grpc_api,
        grpc.aio.insecure_channel(grpc_api.address) as channel,
    ):
        jobs = api_pb2_grpc.JobServiceStub(channel)
        job = spec()
        job["Tasks"][0]["Timeouts"] = {"QueueTimeout": 600}  # queued: it waits for a node
        resp = await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))
        yield Served(orch, rest.url, jobs, resp.job_id)


def follow(served: Served) -> Any:
    return served.jobs.StreamJobLogs(
        api_pb2.StreamJobLogsRequest(job_id=served.job_id, follow=True)
    )


async def until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def refusal(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    return caught.value


async def test_one_follower_more_than_the_cap_is_refused_on_either_api(served: Served) -> None:
    logs = f"{served.rest}/api/v1/orchestrator/jobs/{served.job_id}/logs"
    async with aiohttp.ClientSession() as http:
        # Two over gRPC and one over REST's WebSocket, all waiting for the job to be placed.
        grpc_followers = [follow(served), follow(served)]
        reads = [asyncio.ensure_future(call.read()) for call in grpc_followers]
        ws = await http.ws_connect(f"{logs}?follow=true")
        await until(lambda: served.orch.log_streams_open == CAP)

        err = await refusal(follow(served))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        md = dict(err.trailing_metadata() or ())
        assert md["bacalhau-error-code"] == Unavailable.code
        assert "log_streams_max" in err.details()
        async with http.get(logs) as plain:  # the official SDK's plain read
            assert plain.status == 503
            assert "log_streams_max" in (await plain.json())["Message"]
        async with http.ws_connect(f"{logs}?follow=true") as refused:
            frame = json.loads((await refused.receive()).data)
            assert "log_streams_max" in json.dumps(frame)

        # A follower that leaves frees its place.
        grpc_followers[0].cancel()
        await until(lambda: served.orch.log_streams_open == CAP - 1)
        again = follow(served)
        pending = asyncio.ensure_future(again.read())
        await until(lambda: served.orch.log_streams_open == CAP)
        await ws.close()
        await until(lambda: served.orch.log_streams_open == CAP - 1)
        for call in (again, grpc_followers[1]):
            call.cancel()
        for task in (*reads, pending):
            task.cancel()
        await until(lambda: served.orch.log_streams_open == 0)


async def test_refused_and_finished_reads_leave_no_place_taken(served: Served) -> None:
    """A read of an unknown job, and a read that ends, give their place back."""
    for _ in range(CAP + 2):
        err = await refusal(
            served.jobs.StreamJobLogs(api_pb2.StreamJobLogsRequest(job_id="j-nobody"))
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    for _ in range(CAP + 2):  # not following a job nothing ran of: refused at once
        err = await refusal(
            served.jobs.StreamJobLogs(api_pb2.StreamJobLogsRequest(job_id=served.job_id))
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    assert served.orch.log_streams_open == 0
