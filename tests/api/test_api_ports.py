"""``Network.Ports`` through both public APIs: a job submitted with ports comes back with them
as Bacalhau writes them (REST and gRPC), and a bad mapping is refused naming its field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from bacalhau._proto.v1 import api_pb2
from bacalhau.api import GrpcApiServer
from bacalhau.orchestrator import Orchestrator
from tests.api.test_api_jobs import JOBS, error_of, spec
from tests.api.test_grpc_api import Client, metadata

PORTS = [
    {"Name": "http", "Target": 8080},
    {"Name": "admin", "Static": 30123, "Target": 6060, "HostNetwork": "127.0.0.1"},
]


@pytest.fixture
async def grpc_client(real_orch: Orchestrator) -> AsyncIterator[Client]:
    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        yield Client(channel)


def _with_network(network: dict[str, Any]) -> dict[str, Any]:
    job = spec(Type="service")
    job["Tasks"][0]["Network"] = network
    return job


async def test_rest_round_trip(any_http: aiohttp.ClientSession) -> None:
    job = _with_network({"Type": "Bridge", "Ports": PORTS})
    async with any_http.put(JOBS, json={"Job": job}) as r:
        assert r.status == 200, await r.text()
        job_id = (await r.json())["JobID"]
    async with any_http.get(f"{JOBS}/{job_id}") as r:
        got = await r.json()
    assert got["Job"]["Tasks"][0]["Network"] == {"Type": "Bridge", "Ports": PORTS}


async def test_rest_refuses_a_bad_mapping_naming_it(any_http: aiohttp.ClientSession) -> None:
    job = _with_network({"Type": "Bridge", "Ports": [*PORTS, {"Name": "low", "Static": 80}]})
    async with any_http.put(JOBS, json={"Job": job}) as r:
        assert r.status == 400
        err = await error_of(r)
    assert err["Code"] == "InvalidJobSpec"
    assert err["Details"]["Field"] == "Tasks[0].Network.Ports[2].Static"
    assert err["Hint"]


async def test_grpc_round_trip_and_refusal(grpc_client: Client) -> None:
    job = _with_network(
        {"Type": "Host", "Ports": [{"Name": "web"}, {"Name": "api", "Static": 20001}]}
    )
    resp = await grpc_client.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))
    got = await grpc_client.jobs.GetJob(api_pb2.GetJobRequest(job_id=resp.job_id))
    network = json.loads(got.job.job_json)["Tasks"][0]["Network"]
    assert network == {"Type": "Host", "Ports": [{"Name": "web"}, {"Name": "api", "Static": 20001}]}

    bad = _with_network({"Type": "Host", "Ports": [{"Name": "web", "Target": 80}]})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_client.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(bad)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(info.value)["bacalhau-error-field"] == "Tasks[0].Network.Ports[0].Target"
