"""Answers of the gRPC API that carry a job's executions or history stay readable by a client
with gRPC's default 4 MiB limit, however many the job has: what does not fit is left for
ListExecutions (paged by its next_token) and JobHistory, and our client fetches it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import GrpcApiServer
from bacalhau.client import AsyncGrpcClient
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobHistory,
    RunCommandResult,
    now_ns,
)
from bacalhau.orchestrator import Orchestrator
from bacalhau.transport._errors import FIELD_KEY
from tests.api.test_api_jobs import spec

MIB = 1024 * 1024
#: Each execution carries its run's output, 2 KiB of each stream: about 5 KB of document.
EXECUTIONS = 1100
#: Each item about 300 bytes.
HISTORY = 16_000


class Served:
    def __init__(self, address: str, channel: grpc.aio.Channel, job_id: str) -> None:
        self.address = address
        self.jobs = api_pb2_grpc.JobServiceStub(channel)
        self.job_id = job_id


@pytest.fixture
async def served(real_orch: Orchestrator) -> AsyncIterator[Served]:
    """A stopped job with more executions and more history than 4 MiB hold, behind a gRPC
    API, and a channel with gRPC's default limits."""
    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        jobs = api_pb2_grpc.JobServiceStub(channel)
        resp = await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(spec())))
        await jobs.StopJob(api_pb2.StopJobRequest(job_id=resp.job_id))
        job = await real_orch.get_job(resp.job_id)
        store, start = real_orch.store, now_ns()
        with store.transaction():
            for i in range(EXECUTIONS):
                store.create_execution(
                    Execution(
                        id=f"e-{i:05d}",
                        job_id=job.id,
                        node_id="node-a",
                        desired_state=ExecutionDesiredStateType.STOPPED,
                        compute_state=ExecutionStateType.NEW,
                        run_output=RunCommandResult(stdout="o" * 2048, stderr="e" * 2048),
                        job_version=job.version,
                        create_time=start + i,
                        modify_time=start + i,
                    )
                )
            for i in range(HISTORY):
                store.add_history(
                    JobHistory(
                        seq_num=0,
                        type="JobLevel",
                        job_id=job.id,
                        event=Event(message=f"something happened, for the {i}th time"),
                        time=start + i,
                        job_version=job.version,
                    )
                )
        yield Served(srv.address, channel, job.id)


async def test_get_job_holds_what_fits_and_says_where_to_go_on(served: Served) -> None:
    resp = await served.jobs.GetJob(
        api_pb2.GetJobRequest(job_id=served.job_id, include_history=True, include_executions=True)
    )  # the default channel would refuse an answer over 4 MiB
    assert resp.ByteSize() < 4 * MIB
    assert resp.history_more and resp.history
    assert resp.executions_next_token
    # The history came first and took most of the room: the executions go on after the
    # last that fit.
    held = len(resp.executions)
    assert [e.id for e in resp.executions] == [f"e-{i:05d}" for i in range(held)]
    rest = await served.jobs.ListExecutions(
        api_pb2.ListExecutionsRequest(job_id=served.job_id, next_token=resp.executions_next_token)
    )
    assert rest.executions[0].id == f"e-{held:05d}"
    # Without the history, the executions get the room.
    alone = await served.jobs.GetJob(
        api_pb2.GetJobRequest(job_id=served.job_id, include_executions=True)
    )
    assert alone.ByteSize() < 4 * MIB and len(alone.executions) > held + 500


async def test_list_executions_pages_by_size_and_by_limit(served: Served) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await served.jobs.ListExecutions(
            api_pb2.ListExecutionsRequest(job_id=served.job_id, next_token=token)
        )
        assert resp.ByteSize() < 4 * MIB
        seen += [e.id for e in resp.executions]
        pages += 1
        token = resp.next_token
        if not token:
            break
    assert seen == [f"e-{i:05d}" for i in range(EXECUTIONS)] and pages == 2
    first = await served.jobs.ListExecutions(
        api_pb2.ListExecutionsRequest(job_id=served.job_id, limit=3)
    )
    assert [e.id for e in first.executions] == ["e-00000", "e-00001", "e-00002"]
    second = await served.jobs.ListExecutions(
        api_pb2.ListExecutionsRequest(job_id=served.job_id, limit=3, next_token=first.next_token)
    )
    assert [e.id for e in second.executions] == ["e-00003", "e-00004", "e-00005"]


@pytest.mark.parametrize("token", ["bogus", "x1:!!", "x1:" + "A" * 7])
async def test_a_token_it_did_not_make_is_refused_naming_the_field(
    served: Served, token: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.jobs.ListExecutions(
            api_pb2.ListExecutionsRequest(job_id=served.job_id, next_token=token)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    meta = dict(caught.value.trailing_metadata() or ())
    assert meta[FIELD_KEY] == "next_token"


async def test_job_history_with_a_huge_limit_is_cut_by_size(served: Served) -> None:
    resp = await served.jobs.JobHistory(
        api_pb2.JobHistoryRequest(job_id=served.job_id, limit=1_000_000, include_executions=True)
    )
    assert resp.ByteSize() < 4 * MIB
    assert resp.more and resp.executions_next_token
    assert resp.next_after_seq == resp.items[-1].seq_num < HISTORY
    after = await served.jobs.JobHistory(
        api_pb2.JobHistoryRequest(
            job_id=served.job_id, limit=1_000_000, after_seq=resp.next_after_seq
        )
    )
    assert after.items[0].seq_num == resp.next_after_seq + 1


async def test_our_client_reads_every_execution_and_item(served: Served) -> None:
    async with AsyncGrpcClient(served.address, max_message=4 * MIB) as client:
        details = await client.get_job(served.job_id, history=True, executions=True)
        assert [e.id for e in details.executions] == [f"e-{i:05d}" for i in range(EXECUTIONS)]
        mine = [h for h in details.history if h.event.message.startswith("something")]
        assert len(mine) == HISTORY
        seqs = [h.seq_num for h in details.history]
        assert seqs == sorted(set(seqs))
        assert len(await client.executions(served.job_id)) == EXECUTIONS
        page = await client.history(served.job_id, include_executions=True, limit=10)
        assert len(page.executions) == EXECUTIONS


async def test_job_versions_page_by_size_and_by_limit(real_orch: Orchestrator) -> None:
    """Twelve versions of a 400 KB job are 4.8 MB: more than a client with gRPC's default
    limits reads in one answer. They come in pages, and our client reads them all."""
    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        jobs = api_pb2_grpc.JobServiceStub(channel)
        for n in range(12):
            job = spec(Name="many", Meta={"pad": f"{n:02d}" + "x" * 400_000})
            await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))
        seen: list[int] = []
        token = ""
        pages = 0
        while True:
            resp = await jobs.ListJobVersions(
                api_pb2.ListJobVersionsRequest(job_id="many", next_token=token)
            )
            assert resp.ByteSize() < 4 * MIB
            seen.extend(json.loads(v.job_json)["Version"] for v in resp.versions)
            pages += 1
            token = resp.next_token
            if not token:
                break
        assert seen == list(range(1, 13)) and pages > 1
        first = await jobs.ListJobVersions(api_pb2.ListJobVersionsRequest(job_id="many", limit=5))
        assert [json.loads(v.job_json)["Version"] for v in first.versions] == [1, 2, 3, 4, 5]
        assert first.next_token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await jobs.ListJobVersions(
                api_pb2.ListJobVersionsRequest(job_id="many", next_token="bm90IG1pbmU")
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(caught.value.trailing_metadata() or ())[FIELD_KEY] == "next_token"
        async with AsyncGrpcClient(srv.address) as client:
            versions = await client.job_versions("many")
        assert [v.version for v in versions] == list(range(1, 13))


@pytest.mark.parametrize("line", [False, True], ids=["many-lines", "one-long-line"])
async def test_a_diff_of_two_large_versions_is_cut_with_a_warning(
    real_orch: Orchestrator, line: bool
) -> None:
    """A diff holds both versions: of a 3 MiB job, 6 MiB. The answer keeps what fits, and
    says it is cut (an empty diff would say "nothing changes")."""

    def job(c: str) -> dict[str, Any]:
        if line:
            return spec(Name="big", Meta={"pad": c * (3 * MIB)})
        return spec(Name="big", Meta={f"k{i:06d}": c * 100 for i in range(3 * MIB // 115)})

    async with (
        GrpcApiServer(real_orch, host="127.0.0.1", port=0) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        jobs = api_pb2_grpc.JobServiceStub(channel)
        await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job("x"))))
        resp = await jobs.DiffJob(api_pb2.DiffJobRequest(job_json=json.dumps(job("y"))))
    assert 0 < resp.ByteSize() < 4 * MIB
    assert resp.diff.startswith("---") or "@@" in resp.diff
    assert any("the diff is cut" in w and "REST API gives it whole" in w for w in resp.warnings)
