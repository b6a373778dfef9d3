"""The public APIs' calls on ``/metrics``: counted by REST route pattern or gRPC method (never
by a path holding a job ID) and outcome, and timed."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from prometheus_client import REGISTRY

from bacalhau._proto.v1 import api_pb2
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.orchestrator import Orchestrator
from tests.api.test_grpc_api import Client
from tests.api.test_hardening import noop_job

JOB_ROUTE = "/api/v1/orchestrator/jobs/{job_id}"


def _calls(api: str, route: str, outcome: str) -> float:
    labels = {"api": api, "route": route, "outcome": outcome}
    return REGISTRY.get_sample_value("bacalhau_api_calls_total", labels) or 0.0


def _timed(api: str, route: str) -> float:
    labels = {"api": api, "route": route}
    return REGISTRY.get_sample_value("bacalhau_api_call_seconds_count", labels) or 0.0


async def test_rest_calls_are_counted_by_route_pattern_and_status(
    real_orch: Orchestrator,
) -> None:
    before = (_calls("rest", JOB_ROUTE, "200"), _calls("rest", JOB_ROUTE, "404"))
    unmatched = _calls("rest", "unmatched", "404")
    timed = _timed("rest", JOB_ROUTE)
    async with (
        ApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        async with http.put("/api/v1/orchestrator/jobs", json={"Job": noop_job()}) as r:
            job_id = (await r.json())["JobID"]
        async with http.get(f"/api/v1/orchestrator/jobs/{job_id}") as r:
            assert r.status == 200
        async with http.get("/api/v1/orchestrator/jobs/j-00000000-dead") as r:
            assert r.status == 404
        async with http.get("/no/such/route") as r:
            assert r.status == 404
        async with http.get("/metrics") as r:
            text = await r.text()
    after = (_calls("rest", JOB_ROUTE, "200"), _calls("rest", JOB_ROUTE, "404"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert _calls("rest", "unmatched", "404") == unmatched + 1
    assert _timed("rest", JOB_ROUTE) == timed + 2
    assert job_id not in text  # no series per job


async def test_grpc_calls_are_counted_by_method_and_status(real_orch: Orchestrator) -> None:
    get = "/bacalhau.v1.JobService/GetJob"
    logs = "/bacalhau.v1.JobService/StreamJobLogs"
    before = _calls("grpc", get, "NOT_FOUND"), _calls("grpc", logs, "NOT_FOUND")
    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        client = Client(channel)
        job_id = await client.submit()
        await client.jobs.GetJob(api_pb2.GetJobRequest(job_id=job_id))
        with pytest.raises(grpc.aio.AioRpcError):
            await client.jobs.GetJob(api_pb2.GetJobRequest(job_id="j-00000000-dead"))
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in client.jobs.StreamJobLogs(
                api_pb2.StreamJobLogsRequest(job_id="j-00000000-dead")
            ):
                pass
    assert _calls("grpc", get, "NOT_FOUND") == before[0] + 1
    assert _calls("grpc", logs, "NOT_FOUND") == before[1] + 1
    assert _calls("grpc", get, "OK") >= 1
    assert _calls("grpc", "/bacalhau.v1.JobService/SubmitJob", "OK") >= 1
