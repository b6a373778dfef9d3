"""Refusals the public gRPC API answers with a status where REST (as Bacalhau) answers 200:
UpdateNode's refused decisions, and the stop of a job already stopped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import metadata
from tests.orchestrator.node_view import StaticNodeView, compute_node_info

REQUESTER = "n-grpc-requester"


@dataclass
class Cluster:
    view: StaticNodeView
    jobs: api_pb2_grpc.JobServiceStub
    nodes: api_pb2_grpc.NodeAPIServiceStub
    http: aiohttp.ClientSession


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    view = StaticNodeView()
    info = NodeInfo(node_id=REQUESTER, node_type=NodeType.REQUESTER, version="v1.5.2")
    async with (
        Orchestrator(
            node_info=info, data_dir=tmp_path / "req", compute=NoComputeNodes(), node_view=view
        ) as orch,
        GrpcApiServer(orch, host="127.0.0.1", port=0) as grpc_api,
        ApiServer(orch, host="127.0.0.1", port=0) as rest_api,
        grpc.aio.insecure_channel(grpc_api.address) as channel,
        aiohttp.ClientSession(base_url=rest_api.url) as http,
    ):
        yield Cluster(
            view,
            api_pb2_grpc.JobServiceStub(channel),
            api_pb2_grpc.NodeAPIServiceStub(channel),
            http,
        )


async def _refused(cluster: Cluster, node_id: str, action: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cluster.nodes.UpdateNode(api_pb2.UpdateNodeRequest(node_id=node_id, action=action))
    return info.value


async def test_update_node_refusals_are_statuses(cluster: Cluster) -> None:
    await cluster.view.join(compute_node_info("n-compute-1"))
    # Nodes are approved as they join (no manual approval): approving again changes nothing.
    err = await _refused(cluster, "n-compute-1", "approve")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    md = metadata(err)
    assert md["bacalhau-error-code"] == "InvalidStateTransition"
    assert md["bacalhau-error-hint-bin"] == b"the node is already approved; nothing to do"
    assert err.details() == "node n-compute-1 already approved"
    err = await _refused(cluster, "n-nobody", "reject")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert metadata(err)["bacalhau-error-code"] == "NotFound"
    err = await _refused(cluster, REQUESTER, "reject")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(err)["bacalhau-error-field"] == "node_id"
    err = await _refused(cluster, "", "reject")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A decision that changes something is OK, by a unique prefix too.
    done = await cluster.nodes.UpdateNode(
        api_pb2.UpdateNodeRequest(node_id="n-compute", action="reject", message="test")
    )
    assert done.success and not done.error
    node = await cluster.nodes.GetNode(api_pb2.GetNodeRequest(node_id="n-compute-1"))
    assert node.node.membership == "REJECTED"
    err = await _refused(cluster, "n-compute-1", "reject")
    assert (
        metadata(err)["bacalhau-error-hint-bin"] == b"the node is already rejected; nothing to do"
    )
    # REST answers the same refusal as Bacalhau does: 200, success false, the reason.
    async with cluster.http.post(
        "/api/v1/orchestrator/nodes", json={"NodeID": "n-compute-1", "Action": "reject"}
    ) as r:
        assert r.status == 200
        body = await r.json()
        assert body["Success"] is False and body["Error"] == "node n-compute-1 already rejected"


async def test_stopping_a_stopped_job_is_failed_precondition(cluster: Cluster) -> None:
    submitted = await cluster.jobs.SubmitJob(
        api_pb2.SubmitJobRequest(job_json=json.dumps(spec(Name="to-stop")))
    )
    # With no compute node the job may have failed already: its stop still stops it.
    await cluster.jobs.StopJob(api_pb2.StopJobRequest(job_id="to-stop", reason="done"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cluster.jobs.StopJob(api_pb2.StopJobRequest(job_id=submitted.job_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    md = metadata(info.value)
    assert md["bacalhau-error-code"] == "ConflictJobState"
    assert info.value.details() == "cannot stop job in state Stopped"
    job = await cluster.jobs.GetJob(api_pb2.GetJobRequest(job_id=submitted.job_id))
    assert job.job.state == "Stopped" and job.job.state_message == "done"
    # REST keeps Bacalhau's answer: nothing to do, no evaluation.
    async with cluster.http.delete(
        f"/api/v1/orchestrator/jobs/{submitted.job_id}", json={"reason": "again"}
    ) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["EvaluationID"] == ""


@pytest.mark.parametrize(
    ("job_json", "words"),
    [
        ("", "has no job"),
        ("  ", "has no job"),
        ("[]", "must be a JSON object"),
        (json.dumps({"Job": spec()}), "wrapper"),
        (json.dumps({"job": spec()}), "wrapper"),
    ],
)
async def test_a_submission_without_a_job_names_job_json(
    cluster: Cluster, job_json: str, words: str
) -> None:
    """The request's field is at fault, not a field of a job (there is none); REST's body
    sent whole gets a hint that says what job_json takes."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cluster.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=job_json))
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    md = metadata(err)
    assert md["bacalhau-error-field"] == "job_json", md
    assert words in (err.details() or "")
    if words == "wrapper":
        hint = md["bacalhau-error-hint-bin"]
        assert isinstance(hint, bytes) and b"give the job itself in job_json" in hint
