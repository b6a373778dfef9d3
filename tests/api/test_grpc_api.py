"""The public gRPC API: a real grpc.aio client against a real requester's orchestrator (SQLite
store, scheduler, no compute nodes), and against the in-memory one where a job must finish."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import GrpcApiServer
from bacalhau.models import SpecConfig
from bacalhau.orchestrator import Orchestrator
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_jobs import spec


class Client:
    """The services over one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.jobs = api_pb2_grpc.JobServiceStub(channel)
        self.nodes = api_pb2_grpc.NodeAPIServiceStub(channel)
        self.agent = api_pb2_grpc.AgentServiceStub(channel)
        self.data = api_pb2_grpc.DataServiceStub(channel)

    async def submit(self, **over: Any) -> str:
        resp = await self.jobs.SubmitJob(
            api_pb2.SubmitJobRequest(job_json=json.dumps(spec(**over)))
        )
        return resp.job_id


async def _client(orchestrator: Any) -> AsyncIterator[Client]:
    async with GrpcApiServer(orchestrator, host="127.0.0.1", port=0) as srv:
        assert srv.port > 0
        async with grpc.aio.insecure_channel(srv.address) as channel:
            yield Client(channel)


@pytest.fixture
async def real(real_orch: Orchestrator) -> AsyncIterator[Client]:
    async for client in _client(real_orch):
        yield client


@pytest.fixture
async def memory(orch: MemoryOrchestrator) -> AsyncIterator[Client]:
    async for client in _client(orch):
        yield client


def metadata(err: grpc.aio.AioRpcError) -> dict[str, str | bytes]:
    return {key: value for key, value in err.trailing_metadata() or ()}


async def test_submit_get_and_executions(real: Client) -> None:
    job_id = await real.submit(Name="first", Labels={"team": "a"})
    assert job_id.startswith("j-")
    got = await real.jobs.GetJob(
        api_pb2.GetJobRequest(job_id=job_id[:8], include_history=True, include_executions=True)
    )
    assert got.job.id == job_id and got.job.name == "first" and got.job.type == "batch"
    assert got.job.state in ("Pending", "Queued", "Running", "Failed")
    body = json.loads(got.job.job_json)
    assert body["ID"] == job_id and body["Labels"] == {"team": "a"}
    assert body["Tasks"][0]["Engine"]["Params"]["Image"] == "busybox:1.37.0"
    assert got.history and all(json.loads(h.item_json)["SeqNum"] == h.seq_num for h in got.history)
    execs = await real.jobs.ListExecutions(api_pb2.ListExecutionsRequest(job_id=job_id))
    assert list(execs.executions) == list(got.executions)


async def test_list_pages_with_next_token(real: Client) -> None:
    ids = [await real.submit(Name=f"job{i}") for i in range(5)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await real.jobs.ListJobs(
            api_pb2.ListJobsRequest(limit=2, next_token=token, order_by="created_at")
        )
        seen += [j.id for j in resp.jobs]
        pages += 1
        token = resp.next_token
        if not token:
            break
        assert pages < 10
    assert seen == ids and pages == 3
    reverse = await real.jobs.ListJobs(api_pb2.ListJobsRequest(reverse=True, limit=1))
    assert [j.id for j in reverse.jobs] == ids[-1:]


async def test_label_selector_and_bad_order_by(real: Client) -> None:
    await real.submit(Labels={"team": "a"})
    b = await real.submit(Labels={"team": "b"})
    resp = await real.jobs.ListJobs(api_pb2.ListJobsRequest(labels="team=b"))
    assert [j.id for j in resp.jobs] == [b]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.jobs.ListJobs(api_pb2.ListJobsRequest(order_by="size"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(info.value)["bacalhau-error-field"] == "order_by"


async def test_history_long_poll_returns_on_change(
    memory: Client, orch: MemoryOrchestrator
) -> None:
    job_id = await memory.submit()
    first = await memory.jobs.JobHistory(api_pb2.JobHistoryRequest(job_id=job_id))
    assert first.items and first.more and first.job.id == job_id
    seqs = [i.seq_num for i in first.items]
    assert seqs == sorted(seqs) and first.next_after_seq == seqs[-1]
    # Held until the execution starts; the wait is far longer than the test may take.
    call = memory.jobs.JobHistory(
        api_pb2.JobHistoryRequest(
            job_id=job_id, after_seq=first.next_after_seq, wait_seconds=25, event_type="execution"
        )
    )
    ex = await orch.start_execution(job_id)
    later = await call
    assert later.items and all(i.seq_num > first.next_after_seq for i in later.items)
    assert all(json.loads(i.item_json)["ExecutionID"] == ex for i in later.items)
    await orch.complete_execution(ex, stdout="hi\n")
    rest = await memory.jobs.JobHistory(
        api_pb2.JobHistoryRequest(job_id=job_id, after_seq=later.next_after_seq, wait_seconds=25)
    )
    assert not rest.more and rest.job.state == "Completed"


async def test_stop_running_then_finished_is_failed_precondition(
    memory: Client, orch: MemoryOrchestrator
) -> None:
    running = await memory.submit()
    stopped = await memory.jobs.StopJob(api_pb2.StopJobRequest(job_id=running, reason="enough"))
    assert stopped.evaluation_id
    assert (await orch.get_job(running)).state_message == "enough"
    done = await memory.submit()
    ex = await orch.start_execution(done)
    await orch.complete_execution(ex)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await memory.jobs.StopJob(api_pb2.StopJobRequest(job_id=done))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert metadata(info.value)["bacalhau-error-code"] == "ConflictJobState"


async def test_results_of_a_completed_job(memory: Client, orch: MemoryOrchestrator) -> None:
    job_id = await memory.submit()
    ex = await orch.start_execution(job_id)
    url = "http://127.0.0.1:6001/x.tar.gz?a=1&b=2"
    await orch.complete_execution(ex, published=SpecConfig(type="urlDownload", params={"URL": url}))
    resp = await memory.jobs.GetResults(api_pb2.GetResultsRequest(job_id=job_id))
    assert [json.loads(r) for r in resp.result_json] == [
        {"Type": "urlDownload", "Params": {"URL": url}}
    ]


async def test_unknown_job_is_not_found_with_its_code(real: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.jobs.GetJob(api_pb2.GetJobRequest(job_id="j-00000000-dead"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    md = metadata(info.value)
    assert md["bacalhau-error-code"] == "NotFound"
    assert md["bacalhau-error-component"] == "JobStore"
    assert md["bacalhau-error-hint-bin"] == (
        b"check the job ID or name with `bacalhau job list` (names are looked up in namespace"
        b" default)"
    )


async def test_invalid_spec_names_the_field(real: Client) -> None:
    bad = spec()
    bad["Count"] = -3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(bad)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    md = metadata(info.value)
    assert md["bacalhau-error-code"] == "InvalidJobSpec"
    assert md["bacalhau-error-field"] == "Count"
    details = md["bacalhau-error-details-bin"]
    assert isinstance(details, bytes) and json.loads(details)["Field"] == "Count"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json="{oops"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(info.value)["bacalhau-error-field"] == "job_json"


async def test_nodes_and_agent(real: Client, real_orch: Orchestrator) -> None:
    nodes = await real.nodes.ListNodes(api_pb2.ListNodesRequest())
    own = real_orch.node_info().node_id
    assert own in [n.id for n in nodes.nodes]
    node = await real.nodes.GetNode(api_pb2.GetNodeRequest(node_id=own))
    assert node.node.id == own and json.loads(node.node.node_json)["Info"]["NodeID"] == own
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.nodes.GetNode(api_pb2.GetNodeRequest(node_id="n-nobody"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await real.nodes.UpdateNode(api_pb2.UpdateNodeRequest(node_id=own, action="promote"))
    assert metadata(info.value)["bacalhau-error-field"] == "action"
    assert (await real.agent.Alive(api_pb2.AliveRequest())).status == "OK"
    assert (await real.agent.Version(api_pb2.VersionRequest())).git_version == "v1.5.2"
    me = await real.agent.NodeInfo(api_pb2.NodeInfoRequest())
    assert me.node_id == own and me.node_type == "Requester"


async def test_logs_of_an_unknown_job_end_the_stream_with_not_found(real: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in real.jobs.StreamJobLogs(
            api_pb2.StreamJobLogsRequest(job_id="j-00000000-dead")
        ):
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert metadata(info.value)["bacalhau-error-code"] == "NotFound"


async def test_rerun_makes_a_new_version(real: Client) -> None:
    job_id = await real.submit(Name="again")
    await real.jobs.StopJob(api_pb2.StopJobRequest(job_id=job_id))
    rerun = await real.jobs.RerunJob(api_pb2.RerunJobRequest(job_id=job_id, reason="once more"))
    assert rerun.job_id == job_id and rerun.job_version == 2 and rerun.evaluation_id
    versions = await real.jobs.ListJobVersions(api_pb2.ListJobVersionsRequest(job_id=job_id))
    assert [v.version for v in versions.versions] == [1, 2]
    assert all(json.loads(v.job_json)["Name"] == "again" for v in versions.versions)
