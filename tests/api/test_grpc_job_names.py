"""Jobs by name on the public gRPC API, against the real orchestrator: ``SubmitJob`` with an
existing name makes a new version (``force`` for an unchanged spec), ``DiffJob`` mirrors
REST's ``PUT /jobs/diff``, and every request with a ``job_id`` takes a name in its
``namespace``."""

from __future__ import annotations

import json

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import Client, metadata, real

__all__ = ["real"]  # the fixture, used by name


async def test_submit_by_name_makes_a_new_version_and_force_submits_it_unchanged(
    real: Client,
) -> None:
    job_id = await real.submit(Name="grpc-web")
    again = await real.jobs.SubmitJob(
        api_pb2.SubmitJobRequest(job_json=json.dumps(spec(Name="grpc-web", Priority=2)))
    )
    assert again.job_id == job_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await real.jobs.SubmitJob(
            api_pb2.SubmitJobRequest(job_json=json.dumps(spec(Name="grpc-web", Priority=2)))
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    md = metadata(refused.value)
    assert md["bacalhau-error-code"] == "JobSpecUnchanged"
    # The hint names the request's field first (the CLI's --force flag after it).
    assert bytes(md["bacalhau-error-hint-bin"]).startswith(b"set the request's force field")
    forced = await real.jobs.SubmitJob(
        api_pb2.SubmitJobRequest(job_json=json.dumps(spec(Name="grpc-web", Priority=2)), force=True)
    )
    assert forced.job_id == job_id
    versions = await real.jobs.ListJobVersions(api_pb2.ListJobVersionsRequest(job_id="grpc-web"))
    assert [(v.version, json.loads(v.job_json)["Priority"]) for v in versions.versions] == [
        (1, 0),
        (2, 2),
        (3, 2),
    ]


async def test_diff_job(real: Client) -> None:
    job_id = await real.submit(Name="grpc-diff")
    changed = await real.jobs.DiffJob(
        api_pb2.DiffJobRequest(job_json=json.dumps(spec(Name="grpc-diff", Labels={"a": "b"})))
    )
    assert f"--- grpc-diff (version 1, {job_id})" in changed.diff
    assert "+  a: b" in changed.diff and list(changed.warnings) == []
    same = await real.jobs.DiffJob(
        api_pb2.DiffJobRequest(job_json=json.dumps(spec(Name="grpc-diff")))
    )
    assert same.diff == ""
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await real.jobs.DiffJob(
            api_pb2.DiffJobRequest(job_json=json.dumps(spec(Name="grpc-nobody")))
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as unnamed:
        await real.jobs.DiffJob(api_pb2.DiffJobRequest(job_json=json.dumps(spec())))
    assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(unnamed.value)["bacalhau-error-field"] == "Name"


async def test_every_job_request_takes_a_name_in_its_namespace(real: Client) -> None:
    job_id = await real.submit(Name="grpc-named")
    dev_id = await real.submit(Name="grpc-named", Namespace="dev")
    got = await real.jobs.GetJob(api_pb2.GetJobRequest(job_id="grpc-named"))
    assert got.job.id == job_id
    got = await real.jobs.GetJob(api_pb2.GetJobRequest(job_id="grpc-named", namespace="dev"))
    assert got.job.id == dev_id
    history = await real.jobs.JobHistory(
        api_pb2.JobHistoryRequest(job_id="grpc-named", namespace="dev")
    )
    assert history.job.id == dev_id
    await real.jobs.ListExecutions(api_pb2.ListExecutionsRequest(job_id="grpc-named"))
    await real.jobs.GetResults(api_pb2.GetResultsRequest(job_id="grpc-named"))
    with pytest.raises(grpc.aio.AioRpcError) as no_logs:
        async for _ in real.jobs.StreamJobLogs(
            api_pb2.StreamJobLogsRequest(job_id="grpc-named", namespace="dev")
        ):
            pass
    # Found by its name; it has no execution (no compute node here).
    assert dev_id in (no_logs.value.details() or "")
    await real.jobs.StopJob(api_pb2.StopJobRequest(job_id="grpc-named", namespace="dev"))
    stopped = await real.jobs.GetJob(api_pb2.GetJobRequest(job_id=dev_id))
    assert stopped.job.state == "Stopped"
    rerun = await real.jobs.RerunJob(api_pb2.RerunJobRequest(job_id="grpc-named", namespace="dev"))
    assert (rerun.job_id, rerun.job_version) == (dev_id, 2)
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await real.jobs.GetJob(api_pb2.GetJobRequest(job_id="grpc-named", namespace="prod"))
    assert elsewhere.value.code() == grpc.StatusCode.NOT_FOUND
