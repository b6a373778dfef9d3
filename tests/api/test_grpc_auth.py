"""The public gRPC API with users: UNAUTHENTICATED and PERMISSION_DENIED with our error
metadata, the capability each method needs, and the open methods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import Authorizer, GrpcApiServer
from bacalhau.api._authz import Resource
from bacalhau.api._grpc_auth import requirement
from bacalhau.orchestrator import Orchestrator
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import Blockstore
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_auth import (
    CAPABILITIES,
    READER_PASSWORD,
    _users,
    basic,
    key_of,
)
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import Client, metadata


def creds(header: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", header["Authorization"]),)


def only(capability: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key_of(capability)}"),)


#: A CID no store holds (the empty file's, CIDv1 raw).
ABSENT_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.fixture
async def channel(real_orch: Orchestrator, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    # The real orchestrator: it streams logs (and refuses an unknown job's).
    authorizer = Authorizer(_users())
    with Blockstore(tmp_path / "blocks") as store:
        async with (
            GrpcApiServer(
                real_orch,
                host="127.0.0.1",
                port=0,
                authorizer=authorizer,
                content=BlockstoreContent(store),
            ) as srv,
            grpc.aio.insecure_channel(srv.address) as ch,
        ):
            yield ch


@pytest.fixture
def client(channel: grpc.aio.Channel) -> Client:
    return Client(channel)


async def test_a_call_without_credentials_is_unauthenticated(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.jobs.ListJobs(api_pb2.ListJobsRequest())
    err = caught.value
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == "Request Unauthorized: Missing Authorization header"
    md = metadata(err)
    assert md["bacalhau-error-code"] == "Unauthorized"
    assert md["bacalhau-error-component"] == "Authorizer"
    assert b"BACALHAU_API_KEY" in md["bacalhau-error-hint-bin"]  # type: ignore[operator]
    assert json.loads(md["bacalhau-error-details-bin"]) == {
        "reason": "Missing Authorization header"
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Bearer not-a-key-anyone-has", "invalid API key"),
        (basic("reader", "wrong")["Authorization"], "invalid basic auth credentials"),
        ("Token abc", "unsupported authentication method"),
    ],
)
async def test_wrong_credentials_are_unauthenticated(
    client: Client, value: str, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.nodes.ListNodes(
            api_pb2.ListNodesRequest(), metadata=(("authorization", value),)
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert json.loads(metadata(caught.value)["bacalhau-error-details-bin"])["reason"] == reason


async def test_a_user_without_the_capability_is_denied(client: Client) -> None:
    request = api_pb2.SubmitJobRequest(job_json=json.dumps(spec()))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.jobs.SubmitJob(request, metadata=creds(basic("reader", READER_PASSWORD)))
    err = caught.value
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    md = metadata(err)
    assert md["bacalhau-error-code"] == "Forbidden"
    assert json.loads(md["bacalhau-error-details-bin"]) == {
        "reason": "user 'reader' does not have the required capability 'write:job'",
        "RequiredCapability": "write:job",
    }
    # With the capability, the same call goes through.
    resp = await client.jobs.SubmitJob(request, metadata=only("write:job"))
    assert resp.job_id


async def test_a_streaming_call_is_refused_before_it_starts(client: Client) -> None:
    call = client.jobs.StreamJobLogs(api_pb2.StreamJobLogsRequest(job_id="j-x"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    call = client.jobs.StreamJobLogs(
        api_pb2.StreamJobLogsRequest(job_id="j-x"), metadata=only("read:node")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    call = client.jobs.StreamJobLogs(
        api_pb2.StreamJobLogsRequest(job_id="j-x"), metadata=only("read:job")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # let in: the job is unknown


async def _stream_code(call: Any) -> grpc.StatusCode:
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_the_data_streams_need_the_job_capabilities(client: Client) -> None:
    """GetData reads (``read:job``), PutData writes (``write:job``), as REST's data routes."""

    def get(md: Any) -> Any:
        return client.data.GetData(api_pb2.GetDataRequest(cid=ABSENT_CID), metadata=md)

    def put(md: Any) -> Any:
        chunks = iter([api_pb2.PutDataRequest(chunk=b"not a CAR")])
        return client.data.PutData(chunks, metadata=md)

    denied = grpc.StatusCode.PERMISSION_DENIED
    for call, capability in ((get, "read:job"), (put, "write:job")):
        assert await _stream_code(call(())) == grpc.StatusCode.UNAUTHENTICATED
        for other in CAPABILITIES:
            if other != capability:
                assert await _stream_code(call(only(other))) == denied, other
        # Let in: the CID is unknown, the CAR is garbage.
        assert await _stream_code(call(only(capability))) in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.INVALID_ARGUMENT,
        )


async def test_alive_version_and_reflection_stay_open(
    client: Client, channel: grpc.aio.Channel
) -> None:
    assert (await client.agent.Alive(api_pb2.AliveRequest())).status == "OK"
    await client.agent.Version(api_pb2.VersionRequest())
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in answer.list_services_response.service}
        assert "bacalhau.v1.JobService" in names
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.agent.NodeInfo(api_pb2.NodeInfoRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await client.agent.NodeInfo(api_pb2.NodeInfoRequest(), metadata=only("read:agent"))


METHOD_CAPABILITIES: list[tuple[str, str, Any, str]] = [
    ("jobs", "GetJob", api_pb2.GetJobRequest(job_id="j-x"), "read:job"),
    ("jobs", "ListJobs", api_pb2.ListJobsRequest(), "read:job"),
    ("jobs", "ListExecutions", api_pb2.ListExecutionsRequest(job_id="j-x"), "read:job"),
    ("jobs", "JobHistory", api_pb2.JobHistoryRequest(job_id="j-x"), "read:job"),
    ("jobs", "ListJobVersions", api_pb2.ListJobVersionsRequest(job_id="j-x"), "read:job"),
    ("jobs", "GetResults", api_pb2.GetResultsRequest(job_id="j-x"), "read:job"),
    ("jobs", "StopJob", api_pb2.StopJobRequest(job_id="j-x"), "write:job"),
    ("jobs", "RerunJob", api_pb2.RerunJobRequest(job_id="j-x"), "write:job"),
    ("jobs", "SubmitJob", api_pb2.SubmitJobRequest(job_json="{}"), "write:job"),
    # A diff only reads, but REST's PUT /jobs/diff is a write by Bacalhau's method rule:
    # the same capability on both APIs.
    ("jobs", "DiffJob", api_pb2.DiffJobRequest(job_json="{}"), "write:job"),
    ("nodes", "ListNodes", api_pb2.ListNodesRequest(), "read:node"),
    ("nodes", "GetNode", api_pb2.GetNodeRequest(node_id="n-x"), "read:node"),
    ("nodes", "UpdateNode", api_pb2.UpdateNodeRequest(node_id="n-x"), "write:node"),
    ("agent", "NodeInfo", api_pb2.NodeInfoRequest(), "read:agent"),
    ("agent", "Config", api_pb2.ConfigRequest(), "read:agent"),
    # As REST's /api/v1/data: a job resource.
    ("data", "ListData", api_pb2.ListDataRequest(cid=ABSENT_CID), "read:job"),
]


@pytest.mark.parametrize(("service", "method", "request_", "capability"), METHOD_CAPABILITIES)
async def test_each_method_needs_its_capability_and_no_other(
    client: Client, service: str, method: str, request_: Any, capability: str
) -> None:
    call = getattr(getattr(client, service), method)

    async def code(md: Any) -> grpc.StatusCode:
        try:
            await call(request_, metadata=md)
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    denied = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert await code(only(capability)) not in denied
    for other in CAPABILITIES:
        if other != capability:
            assert await code(only(other)) == grpc.StatusCode.PERMISSION_DENIED, other
    assert await code(()) == grpc.StatusCode.UNAUTHENTICATED


def test_every_method_of_the_api_is_placed() -> None:
    """A method added to api.proto lands in a service, so it needs that resource; one that
    only reads must be listed, or it is taken for a write (the safe side)."""
    checked = {f"/bacalhau.v1.{s}/{m}" for s, m in _services_and_methods()}
    listed = {f"/bacalhau.v1.{_SERVICE[s]}/{m}" for s, m, _, _ in METHOD_CAPABILITIES}
    open_methods = {"/bacalhau.v1.AgentService/Alive", "/bacalhau.v1.AgentService/Version"}
    streaming = {
        "/bacalhau.v1.JobService/StreamJobLogs": True,
        "/bacalhau.v1.DataService/GetData": True,
        "/bacalhau.v1.DataService/PutData": False,
    }
    # Open, but credentials sent are checked (REST's whoami).
    identify = "/bacalhau.v1.AgentService/WhoAmI"
    assert requirement(identify) == (Resource.IDENTIFY, True)
    unlisted = checked - listed - open_methods - set(streaming) - {identify}
    assert unlisted == set(), "give each new method a row in METHOD_CAPABILITIES"
    for method in open_methods:
        assert requirement(method) == (Resource.OPEN, True)
    for method, reads in streaming.items():
        assert requirement(method) == (Resource.JOB, reads)
    assert requirement("/other.Service/Call") == (Resource.ANY_USER, True)


_SERVICE = {
    "jobs": "JobService",
    "nodes": "NodeAPIService",
    "agent": "AgentService",
    "data": "DataService",
}


def _services_and_methods() -> list[tuple[str, str]]:
    return [
        (service.name, method.name)
        for service in api_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


async def test_without_users_no_authentication_runs(orch: MemoryOrchestrator) -> None:
    async with (
        GrpcApiServer(orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = api_pb2_grpc.JobServiceStub(ch)
        await stub.ListJobs(api_pb2.ListJobsRequest())
        await stub.ListJobs(api_pb2.ListJobsRequest(), metadata=(("authorization", "Bearer junk"),))
