"""Requests at the edges of what the public gRPC API takes, against the real orchestrator:
numbers beyond int64, missing and absurdly long IDs, malformed messages, conflicting
namespaces, and errors whose words (or size) must still reach the client."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from bacalhau._proto.v1 import api_pb2
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.api._grpc_errors import MAX_TEXT, capped, error_metadata
from bacalhau.errors import InvalidJobSpec
from bacalhau.orchestrator import Orchestrator
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import Client, metadata, real

__all__ = ["real"]  # the fixture, used by name

MAX_INT64 = 2**63 - 1
JOBS = "/api/v1/orchestrator/jobs"


async def failure(call: Any, request: Any) -> grpc.aio.AioRpcError:
    """The error ``call`` (unary or server-streaming) ends with."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        answer = call(request)
        if hasattr(answer, "__aiter__"):
            async for _ in answer:
                pass
        else:
            await answer
    return info.value


def field_and_hint(err: grpc.aio.AioRpcError) -> tuple[str | bytes, bytes]:
    md = metadata(err)
    hint = md.get("bacalhau-error-hint-bin", b"")
    assert isinstance(hint, bytes)
    return md.get("bacalhau-error-field", ""), hint


def metadata_bytes(err: grpc.aio.AioRpcError) -> int:
    return len((err.details() or "").encode()) + sum(
        len(k) + len(v) for k, v in err.trailing_metadata() or ()
    )


# -- numbers beyond int64 --------------------------------------------------------------------


def _beyond_int64(job_id: str) -> list[tuple[str, Any]]:
    """For every uint64 field of every request: (the field, a request with it at 2**63)."""
    return [
        (field.name, getattr(api_pb2, message.name)(job_id=job_id, **{field.name: MAX_INT64 + 1}))
        for message in api_pb2.DESCRIPTOR.message_types_by_name.values()
        if message.name.endswith("Request")
        for field in message.fields
        if field.type == field.TYPE_UINT64
    ]


async def test_uint64_beyond_int64_is_invalid_argument_as_on_rest(
    real: Client, real_server: ApiServer
) -> None:
    job_id = await real.submit()
    cases = _beyond_int64(job_id)
    assert {(type(r).__name__, name) for name, r in cases} >= {
        ("GetJobRequest", "job_version"),
        ("ListExecutionsRequest", "job_version"),
        ("JobHistoryRequest", "job_version"),
        ("JobHistoryRequest", "after_seq"),
        ("RerunJobRequest", "job_version"),
        ("StreamJobLogsRequest", "job_version"),
    }
    for name, request in cases:
        call = getattr(real.jobs, type(request).__name__.removesuffix("Request"))
        err = await failure(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (request, err.details())
        assert err.details().startswith(f"{name} must be from 0 to {MAX_INT64}")
        field, hint = field_and_hint(err)
        assert field == name and hint.startswith(f"give {name} as a whole number".encode())
    async with (
        aiohttp.ClientSession(base_url=real_server.url) as http,
        http.get(f"{JOBS}/{job_id}", params={"job_version": str(MAX_INT64 + 1)}) as r,
    ):
        assert r.status == 400
        rest = (await r.json())["Message"]
    assert rest.startswith(f"job_version must be from 0 to {MAX_INT64}")
    # The largest int64 is a version like any other: this job has none such.
    largest = api_pb2.GetJobRequest(job_id=job_id, job_version=MAX_INT64)
    err = await failure(real.jobs.GetJob, largest)
    assert err.code() == grpc.StatusCode.NOT_FOUND


# -- missing IDs -----------------------------------------------------------------------------


def _job_requests(client: Client) -> list[tuple[Any, Any]]:
    """Every JobService method whose request names a job, with none named."""
    service = api_pb2.DESCRIPTOR.services_by_name["JobService"]
    return [
        (getattr(client.jobs, m.name), getattr(api_pb2, m.input_type.name)())
        for m in service.methods
        if "job_id" in m.input_type.fields_by_name
    ]


async def test_a_missing_job_or_node_id_is_invalid_argument_naming_it(real: Client) -> None:
    calls = _job_requests(real)
    assert len(calls) == 8
    for call, request in calls:
        err = await failure(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, type(request).__name__
        assert err.details() == "job_id is required"
        field, hint = field_and_hint(err)
        assert field == "job_id" and b"ListJobs" in hint
    for call, request in (
        (real.nodes.GetNode, api_pb2.GetNodeRequest()),
        (real.nodes.UpdateNode, api_pb2.UpdateNodeRequest(action="approve")),
    ):
        err = await failure(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        field, hint = field_and_hint(err)
        assert field == "node_id" and b"ListNodes" in hint
    # A node ID filter of the history is optional.
    job_id = await real.submit()
    await real.jobs.JobHistory(api_pb2.JobHistoryRequest(job_id=job_id))


# -- long IDs --------------------------------------------------------------------------------


async def test_an_id_longer_than_any_is_not_found_on_both_apis(
    real: Client, real_server: ApiServer
) -> None:
    job_id = await real.submit()
    for ref in ("j" * 100_000, job_id + "0", "j-" + "\U0001f600" * 20_000):
        for call, request in (
            (real.jobs.GetJob, api_pb2.GetJobRequest(job_id=ref)),
            (real.jobs.StopJob, api_pb2.StopJobRequest(job_id=ref)),
            (real.jobs.JobHistory, api_pb2.JobHistoryRequest(job_id=ref)),
            (real.jobs.StreamJobLogs, api_pb2.StreamJobLogsRequest(job_id=ref)),
        ):
            err = await failure(call, request)
            assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
            assert metadata(err)["bacalhau-error-code"] == "NotFound"
            assert err.details().startswith("job not found: j")
            assert len(err.details()) <= len("job not found: ") + 101
    # The name in the hint is shortened too.
    err = await failure(
        real.jobs.GetJob, api_pb2.GetJobRequest(job_id="nope", namespace="n" * 20_000)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND and metadata_bytes(err) < 2000
    # A name longer than an ID is still a name.
    long_name = "a-name-" + "x" * 500
    named = await real.submit(Name=long_name)
    got = await real.jobs.GetJob(api_pb2.GetJobRequest(job_id=long_name))
    assert got.job.id == named
    async with aiohttp.ClientSession(base_url=real_server.url) as http:
        # REST's URLs are at most 8 KB: a 7,000-character reference is the longest it sees.
        async with http.get(f"{JOBS}/{'j' * 7000}") as r:
            assert r.status == 404
            body = await r.json()
        assert body["Message"] == f"job not found: {'j' * 100}…"
        async with http.get(f"{JOBS}/{long_name}") as r:
            assert r.status == 200 and (await r.json())["Job"]["ID"] == named


async def test_an_error_of_any_size_reaches_the_client_with_its_status(real: Client) -> None:
    bad = spec(Name="x" * 50_000)
    bad["Count"] = -1
    err = await failure(
        real.jobs.SubmitJob, api_pb2.SubmitJobRequest(job_json=json.dumps(bad), force=True)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = await failure(
        real.jobs.DiffJob,
        api_pb2.DiffJobRequest(job_json=json.dumps(spec(Name="\U0001f600" * 30_000))),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
    assert err.details().endswith("…") and len(err.details().encode()) <= MAX_TEXT
    assert metadata_bytes(err) < 4000


def test_error_texts_are_capped_in_bytes() -> None:
    assert capped("short") == "short"
    assert capped("é" * 500) == "é" * 500  # 1,000 bytes: fits
    for text in ("x" * 5000, "é" * 5000, "\U0001f600" * 5000, "x" + "\U0001f600" * 5000):
        out = capped(text)
        assert out.endswith("…") and len(out.encode()) <= MAX_TEXT
        assert text.startswith(out[:-1]) and len(out.encode()) > MAX_TEXT - 8
    err = InvalidJobSpec("m" * 30_000, field="Labels." + "\U0001f600" * 20_000, hint="h" * 9000)
    md = dict(error_metadata(err))
    field, hint, details = (
        md["bacalhau-error-field"],
        md["bacalhau-error-hint-bin"],
        md["bacalhau-error-details-bin"],
    )
    assert isinstance(field, str) and field.startswith("Labels.\\U0001f600") and len(field) <= 200
    assert isinstance(hint, bytes) and len(hint) <= MAX_TEXT and hint.decode().endswith("…")
    assert isinstance(details, bytes) and len(details) <= MAX_TEXT
    assert json.loads(details)["Field"].startswith("Labels.\U0001f600")


# -- malformed messages ----------------------------------------------------------------------


@pytest.fixture
async def channel(real_orch: Orchestrator) -> AsyncIterator[grpc.aio.Channel]:
    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        yield ch


async def test_a_malformed_request_is_invalid_argument_without_a_traceback(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for method, raw in (
        ("/bacalhau.v1.JobService/GetJob", b"\xff\xff\xff"),
        ("/bacalhau.v1.JobService/GetJob", b"\x0a\x02\xff\xfe"),  # job_id not UTF-8
        ("/bacalhau.v1.NodeAPIService/UpdateNode", b"\x0a"),
        ("/bacalhau.v1.AgentService/Alive", b"\x08"),
    ):
        call = channel.unary_unary(method)
        err = await failure(call, raw)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, err.details())
        assert err.details().startswith("the request is not a valid bacalhau.v1.")
        assert metadata(err)["bacalhau-error-code"] == "BadRequest"
    stream = channel.unary_stream("/bacalhau.v1.JobService/StreamJobLogs")
    err = await failure(stream, b"\xff\xff")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A well-formed request still gets through the lenient parsing.
    alive = channel.unary_unary(
        "/bacalhau.v1.AgentService/Alive",
        request_serializer=api_pb2.AliveRequest.SerializeToString,
        response_deserializer=api_pb2.AliveResponse.FromString,
    )
    assert (await alive(api_pb2.AliveRequest())).status == "OK"


# -- wording and conflicts -------------------------------------------------------------------


async def test_fields_are_named_as_in_the_proto_with_a_hint(real: Client) -> None:
    for wait in (-1.0, math.nan):
        err = await failure(
            real.jobs.SubmitJob,
            api_pb2.SubmitJobRequest(job_json=json.dumps(spec()), wait_seconds=wait),
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("wait_seconds must be >= 0")
        field, hint = field_and_hint(err)
        assert field == "wait_seconds" and b"wait_seconds" in hint
    listed = await real.jobs.ListJobs(api_pb2.ListJobsRequest())
    assert list(listed.jobs) == []  # refused before anything was submitted
    # The history long-poll's wait likewise (it was read as 0).
    submitted = await real.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(spec())))
    for wait in (-1.0, math.nan):
        err = await failure(
            real.jobs.JobHistory,
            api_pb2.JobHistoryRequest(job_id=submitted.job_id, wait_seconds=wait),
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_and_hint(err)[0] == "wait_seconds"
    first = api_pb2.SubmitJobRequest(job_json=json.dumps(spec()), idempotency_token="tok-1")
    await real.jobs.SubmitJob(first)
    other = api_pb2.SubmitJobRequest(
        job_json=json.dumps(spec(Labels={"a": "b"})), idempotency_token="tok-1"
    )
    err = await failure(real.jobs.SubmitJob, other)
    assert metadata(err)["bacalhau-error-code"] == "IdempotencyTokenReused"
    assert field_and_hint(err)[0] == "idempotency_token"
    details = metadata(err)["bacalhau-error-details-bin"]
    assert isinstance(details, bytes) and json.loads(details)["Field"] == "idempotency_token"


# -- the standard error model ----------------------------------------------------------------


def rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    raw = metadata(err)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def unpacked(status: status_pb2.Status, kind: Any) -> Any:
    found = [d for d in status.details if d.Is(kind.DESCRIPTOR)]
    if not found:
        return None
    out = kind()
    found[0].Unpack(out)
    return out


async def test_errors_carry_google_rpc_status_as_generic_clients_read_it(real: Client) -> None:
    """What our trailers say, also in gRPC's richer error model: the status code, the stable
    code as ErrorInfo's reason, the hint and component in its metadata, the field at fault
    as a BadRequest field violation."""
    missing = await failure(real.jobs.GetJob, api_pb2.GetJobRequest(job_id="j-nobody"))
    status = rich_status(missing)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert status.message == missing.details()
    info = unpacked(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("NotFound", "bacalhau.org")
    assert info.metadata["Kind"] == "JobNotFound" and info.metadata["component"]
    assert unpacked(status, error_details_pb2.BadRequest) is None  # no field at fault

    bad = await failure(
        real.jobs.JobHistory, api_pb2.JobHistoryRequest(job_id="j-x", wait_seconds=-1)
    )
    status = rich_status(bad)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = unpacked(status, error_details_pb2.ErrorInfo)
    assert info.reason == metadata(bad)["bacalhau-error-code"]
    hint = metadata(bad)["bacalhau-error-hint-bin"]
    assert isinstance(hint, bytes) and info.metadata["hint"] == hint.decode()
    request = unpacked(status, error_details_pb2.BadRequest)
    assert [v.field for v in request.field_violations] == ["wait_seconds"]


def test_the_rich_status_stays_small_whatever_the_error() -> None:
    """Its texts are capped shorter than our trailers': both must fit a client's headers."""
    err = InvalidJobSpec("m" * 30_000, field="Labels." + "x" * 20_000, hint="h" * 9000)
    raw = dict(error_metadata(err))["grpc-status-details-bin"]
    assert isinstance(raw, bytes) and len(raw) < 1500
    status = status_pb2.Status.FromString(raw)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert unpacked(status, error_details_pb2.ErrorInfo).metadata["hint"].endswith("…")
