"""The official Python clients (bacalhau-sdk 1.4.2, bacalhau-apiclient 1.4.1) against our server.

Their decoding is strict (a number where an object is expected raises, states are compared as
ints of the 0-9 numbering), so these tests pin the wire shapes end to end. The SDK is
synchronous: its calls run in a thread while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bacalhau_apiclient.api import ops_api, orchestrator_api, utils_api  # type: ignore[import-untyped]
from bacalhau_apiclient.api_client import ApiClient  # type: ignore[import-untyped]
from bacalhau_apiclient.models.api_put_job_request import ApiPutJobRequest  # type: ignore[import-untyped]
from bacalhau_apiclient.models.job import Job  # type: ignore[import-untyped]
from bacalhau_apiclient.models.resources_config import ResourcesConfig  # type: ignore[import-untyped]
from bacalhau_apiclient.models.spec_config import SpecConfig as PySpecConfig  # type: ignore[import-untyped]
from bacalhau_apiclient.models.task import Task  # type: ignore[import-untyped]
from bacalhau_sdk.config import init_config  # type: ignore[import-untyped]
from bacalhau_sdk.jobs import Jobs  # type: ignore[import-untyped]

from bacalhau.api import ApiServer
from bacalhau.models import SpecConfig
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_nodes_agent import add_compute

T = TypeVar("T")


def point_sdk_at(server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unset, these point the SDK at a public host: always set them.
    monkeypatch.setenv("BACALHAU_API_HOST", "127.0.0.1")
    monkeypatch.setenv("BACALHAU_API_PORT", str(server.port))
    monkeypatch.delenv("BACALHAU_HTTPS", raising=False)
    monkeypatch.setenv("BACALHAU_DIR", str(tmp_path))


@pytest.fixture
def sdk_env(server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_sdk_at(server, tmp_path, monkeypatch)


@pytest.fixture
def sdk_real_env(real_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_sdk_at(real_server, tmp_path, monkeypatch)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def docker_job() -> Job:
    task = Task(
        name="main",
        engine=PySpecConfig(
            type="docker",
            params={"Image": "busybox:1.37.0", "Entrypoint": ["echo"], "Parameters": ["hi"]},
        ),
        publisher=PySpecConfig(type="local"),
        resources=ResourcesConfig(cpu=".1", memory="100mb"),
    )
    return Job(name="sdk job", type="batch", count=1, tasks=[task], labels={"via": "sdk"})


async def test_sdk_submit_get_executions_history_list_results_stop(
    sdk_env: None, orch: MemoryOrchestrator, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = await call(Jobs)
    put = await call(jobs.put, ApiPutJobRequest(job=docker_job()))
    assert put is not None, capsys.readouterr().out
    job_id = put.job_id
    assert job_id.startswith("j-") and put.evaluation_id
    url = "http://127.0.0.1:6001/e.tar.gz"
    ex = await orch.start_execution(job_id, node_id="n-sdk")
    await orch.complete_execution(
        ex, stdout="hi\n", published=SpecConfig("urlDownload", {"URL": url})
    )

    got = await call(jobs.get, job_id, include="executions,history")
    assert got is not None, capsys.readouterr().out
    assert got.job.id == job_id and got.job.name == "sdk job"
    assert got.job.labels == {"via": "sdk"}
    assert got.job.tasks[0].engine.type == "docker"
    assert got.job.state.state_type == "Completed"
    execution = got.executions.items[0]
    assert execution.id == ex and execution.node_id == "n-sdk"
    assert execution.compute_state.state_type == 7  # Completed in the 0-9 numbering
    assert execution.run_output.stdout == "hi\n"
    assert got.history.items[0].job_state.new == "Pending"

    execs = await call(jobs.executions, job_id)
    assert execs is not None and [e.id for e in execs.items] == [ex]

    history = await call(jobs.history, job_id)  # SDK default: event_type=execution
    assert history is not None
    assert history.items and all(h.type == "ExecutionLevel" for h in history.items)
    assert history.items[-1].execution_state.new == 7
    assert history.items[-1].node_id == "n-sdk"
    by_node = await call(jobs.history, job_id, node_id="n-sdk", event_type="all")
    assert by_node is not None and len(by_node.items) == len(history.items)

    results = await call(jobs.results, job_id)
    assert results is not None and results.items[0].params == {"URL": url}

    other = await call(jobs.put, ApiPutJobRequest(job=docker_job()))
    assert other is not None
    listed = await call(jobs.list)
    assert listed is not None
    assert [j.id for j in listed.items] == [job_id, other.job_id]
    reverse = await call(jobs.list, reverse=True, limit=1)
    assert reverse is not None and reverse.items[0].id == other.job_id and reverse.next_token

    stopped = await call(jobs.stop, other.job_id)  # sends reason=None and a {} body
    assert stopped is not None and stopped.evaluation_id
    assert (await orch.get_job(other.job_id)).state_message == "stopped by user"
    refused = await call(jobs.stop, job_id, reason="too late")
    assert refused is None  # the SDK prints the API error and returns None
    assert "ConflictJobState" in capsys.readouterr().out


async def test_apiclient_nodes_agent_and_utils(sdk_env: None, orch: MemoryOrchestrator) -> None:
    add_compute(orch, "n-c1", 4, zone="a")
    client = ApiClient(init_config())
    orchestrator = orchestrator_api.OrchestratorApi(client)
    nodes = await call(orchestrator.orchestratorlist_nodes)
    assert [n.info.node_id for n in nodes.nodes] == ["n-c1", "n-memory-requester"]
    compute = nodes.nodes[0].info.compute_node_info
    assert compute.execution_engines == ["docker", "wasm"]
    assert compute.available_capacity.cpu == 4.0
    node = await call(orchestrator.orchestratorget_node, "n-c1")
    assert node.node.info.labels == {"zone": "a"}
    ops = ops_api.OpsApi(client)
    version = await call(ops.agentversion)
    assert version.git_version == "v1.5.2"
    info = await call(ops.agentnode)
    assert info.node_id == "n-memory-requester" and info.node_type == "Requester"
    alive = await call(ops.agentalive)
    assert "OK" in alive
    utils = utils_api.UtilsApi(client)
    health = await call(utils.healthz)
    assert health.free_space.root.all > 0
    assert "OK" in await call(utils.livez)  # the SDK stringifies the raw bytes
    assert (await call(utils.node_info)).node_id == "n-memory-requester"


async def test_sdk_against_the_real_orchestrator(
    sdk_real_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = await call(Jobs)
    put = await call(jobs.put, ApiPutJobRequest(job=docker_job()))
    assert put is not None, capsys.readouterr().out
    job_id = put.job_id
    # No compute node has joined, so the scheduler fails the job at once; wait for that.
    for _ in range(200):
        got = await call(jobs.get, job_id, include="executions,history")
        assert got is not None, capsys.readouterr().out
        if got.job.state.state_type == "Failed":
            break
        await asyncio.sleep(0.02)
    assert got.job.state.state_type == "Failed"
    assert got.job.tasks[0].resources.cpu == ".1"
    assert [h.job_state.new for h in got.history.items] == ["Pending", "Failed"]
    assert got.executions.items == []
    history = await call(jobs.history, job_id, event_type="job")
    assert history is not None and history.next_token == ""
    listed = await call(jobs.list)
    assert listed is not None and [j.id for j in listed.items] == [job_id]
    stopped = await call(jobs.stop, job_id)  # Failed -> Stopped, nothing to evaluate
    assert stopped is not None and stopped.evaluation_id == ""
    again = await call(jobs.get, job_id)
    assert again is not None and again.job.state.state_type == "Stopped"
