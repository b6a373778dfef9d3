"""The largest job a node takes: every answer carrying it fits a gRPC client's default 4 MiB,
and a job too large is refused at either API with the stable code, the field and the limit,
submitting nothing."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import grpc
import pytest

from bacalhau._proto.v1 import api_pb2
from bacalhau.api import ApiServer
from bacalhau.api._job_size import job_size_limit
from bacalhau.orchestrator import Orchestrator
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import Client, metadata, real

__all__ = ["real"]  # the fixture, used by name

JOBS = "/api/v1/orchestrator/jobs"
#: The default max_job_size, and a gRPC client's default receive limit.
FOUR_MIB = 4 * 1024 * 1024


def job_of_size(size: int) -> str:
    """A job's JSON of exactly ``size`` bytes (non-ASCII text in it: UTF-8 bytes count)."""
    job = spec(Labels={"pad": ""})
    bare = len(json.dumps(job, ensure_ascii=False).encode())
    pad = size - bare
    # Two-byte characters, and one ASCII character when the count is odd.
    job["Labels"] = {"pad": "é" * (pad // 2) + "x" * (pad % 2)}
    text = json.dumps(job, ensure_ascii=False)
    assert len(text.encode()) == size
    return text


async def test_answers_carrying_the_largest_job_fit_a_default_grpc_client(real: Client) -> None:
    """The largest job taken comes back in GetJob (with history and executions), ListJobs
    (every job) and JobHistory, each read by a client of gRPC's default receive limit."""
    text = job_of_size(job_size_limit(FOUR_MIB))
    submitted = await real.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=text))
    small = await real.submit()

    got = await real.jobs.GetJob(
        api_pb2.GetJobRequest(
            job_id=submitted.job_id, include_history=True, include_executions=True
        )
    )
    assert got.ByteSize() <= FOUR_MIB
    assert json.loads(got.job.job_json)["Labels"] == json.loads(text)["Labels"]
    listed = await real.jobs.ListJobs(api_pb2.ListJobsRequest())
    ids = [j.id for j in listed.jobs]
    if listed.next_token:  # the large job came alone: the small one is on the next page
        more = await real.jobs.ListJobs(api_pb2.ListJobsRequest(next_token=listed.next_token))
        ids += [j.id for j in more.jobs]
    assert sorted(ids) == sorted([submitted.job_id, small])
    history = await real.jobs.JobHistory(
        api_pb2.JobHistoryRequest(job_id=submitted.job_id, include_executions=True)
    )
    assert history.job.id == submitted.job_id


@pytest.mark.parametrize("over", [1, FOUR_MIB // 2], ids=["just-over", "past-max-job-size"])
async def test_a_job_too_large_is_refused_over_grpc_with_the_field(real: Client, over: int) -> None:
    """Over the limit, even past max_job_size itself: RESOURCE_EXHAUSTED (gRPC's status for
    a message too large) with the stable code, the field and the limit, not gRPC's bare
    refusal; nothing is submitted."""
    limit = job_size_limit(FOUR_MIB)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=job_of_size(limit + over)))
    err = info.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    md = metadata(err)
    assert md["bacalhau-error-code"] == "RequestEntityTooLarge"
    assert md["bacalhau-error-field"] == "job_json"
    assert str(limit) in (err.details() or "")
    assert b"max_job_size" in md["bacalhau-error-hint-bin"]  # type: ignore[operator]
    listed = await real.jobs.ListJobs(api_pb2.ListJobsRequest())
    assert not listed.jobs


async def test_a_job_too_large_for_its_answers_is_a_413_on_rest(
    real_orch: Orchestrator,
) -> None:
    """A body under max_job_size whose job would not leave room in the answers: 413 with
    the field, read whole (the connection goes on); nothing is submitted."""
    limit = job_size_limit(FOUR_MIB)
    body = '{"Job": ' + job_of_size(limit) + "}"
    assert limit < len(body.encode()) < FOUR_MIB
    async with (
        ApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        async with http.put(
            JOBS, data=body.encode(), headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 413
            err: dict[str, Any] = await r.json()
        assert err["Code"] == "RequestEntityTooLarge"
        assert err["Details"]["Field"] == "Job" and str(limit) in err["Message"]
        async with http.get(JOBS) as r:
            assert (await r.json())["Items"] == []
