"""The official Bacalhau Python SDK (bacalhau-sdk 1.4.2, installed without its dependencies)
against a real devstack: submit, read back with executions and history, list, stop.

The SDK reads its address from the environment each time a ``Jobs`` is made, and prints API
errors instead of raising them (returning None): every call's result is checked, with what
it printed in the failure message.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bacalhau_apiclient.models.api_put_job_request import ApiPutJobRequest  # type: ignore[import-untyped]
from bacalhau_apiclient.models.job import Job  # type: ignore[import-untyped]
from bacalhau_apiclient.models.resources_config import ResourcesConfig  # type: ignore[import-untyped]
from bacalhau_apiclient.models.spec_config import SpecConfig  # type: ignore[import-untyped]
from bacalhau_apiclient.models.task import Task  # type: ignore[import-untyped]
from bacalhau_sdk.jobs import Jobs  # type: ignore[import-untyped]

from tests.integration.devstack import Devstack, containers, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-checks")]

#: Execution states in the numbering the 1.4 SDK speaks (0-9).
BID_ACCEPTED, COMPLETED, CANCELLED = 5, 7, 9


def docker_job(name: str, image: str, *command: str) -> Any:
    task = Task(
        name="main",
        engine=SpecConfig(
            type="docker",
            params={"Image": image, "Entrypoint": list(command[:1]), "Parameters": command[1:]},
        ),
        publisher=SpecConfig(type="local"),
        resources=ResourcesConfig(cpu=".1", memory="64mb"),
    )
    return Job(name=name, type="batch", count=1, tasks=[task], labels={"via": "official-sdk"})


@pytest.fixture
def jobs(devstack: Devstack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A ``Jobs`` pointed at the devstack (unset, the SDK would call a public host)."""
    monkeypatch.setenv("BACALHAU_API_HOST", devstack.api_address.rsplit(":", 1)[0])
    monkeypatch.setenv("BACALHAU_API_PORT", str(devstack.api_port))
    monkeypatch.delenv("BACALHAU_HTTPS", raising=False)
    monkeypatch.setenv("BACALHAU_DIR", str(tmp_path))
    return Jobs()


def _all_job_ids(jobs: Any, capsys: pytest.CaptureFixture[str]) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = jobs.list(limit=5, next_token=token)
        assert page is not None, capsys.readouterr().out
        ids.extend(j.id for j in page.items)
        token = page.next_token
        if not token:
            return ids


def test_official_sdk_submits_reads_lists_and_stops_jobs(
    devstack: Devstack, jobs: Any, busybox_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    put = jobs.put(ApiPutJobRequest(job=docker_job(name, busybox_image, "echo", "hello sdk")))
    assert put is not None, capsys.readouterr().out
    job_id = put.job_id
    assert job_id.startswith("j-") and put.evaluation_id

    def finished() -> Any:
        got = jobs.get(job_id, include="executions,history")
        assert got is not None, capsys.readouterr().out
        return got if got.job.state.state_type in ("Completed", "Failed") else None

    got = eventually(finished, timeout=30, what="the SDK's job finishing")
    assert got.job.state.state_type == "Completed", got.job.state
    assert got.job.id == job_id and got.job.name == name
    assert got.job.labels == {"via": "official-sdk"}
    assert got.job.tasks[0].engine.params["Image"] == busybox_image
    [execution] = got.executions.items
    assert execution.node_id in {n.node_id for n in devstack.compute}
    assert execution.compute_state.state_type == COMPLETED
    assert execution.run_output.stdout == "hello sdk\n"
    assert execution.run_output.exit_code == 0
    job_states = [h.job_state.new for h in got.history.items if h.type == "JobLevel"]
    assert job_states[0] == "Pending" and job_states[-1] == "Completed", job_states

    executions = jobs.executions(job_id)
    assert executions is not None, capsys.readouterr().out
    assert [e.id for e in executions.items] == [execution.id]

    history = jobs.history(job_id)  # the SDK's default: execution-level events
    assert history is not None, capsys.readouterr().out
    assert history.items and all(h.type == "ExecutionLevel" for h in history.items)
    assert {h.execution_id for h in history.items} == {execution.id}
    assert history.items[-1].execution_state.new == COMPLETED
    on_node = jobs.history(job_id, node_id=execution.node_id, event_type="all")
    assert on_node is not None and len(on_node.items) >= len(history.items)

    results = jobs.results(job_id)
    assert results is not None, capsys.readouterr().out
    [published] = results.items
    assert published.params["URL"].endswith(".tar.gz")

    # The SDK's own example run twice: the same named job again is a new job for a client
    # of before v1.8 (no 409 "no changes", no update of the first job).
    again = jobs.put(ApiPutJobRequest(job=docker_job(name, busybox_image, "echo", "hello sdk")))
    assert again is not None, capsys.readouterr().out
    assert again.job_id != job_id

    def again_finished() -> Any:
        got = jobs.get(again.job_id)
        assert got is not None, capsys.readouterr().out
        return got if got.job.state.state_type in ("Completed", "Failed") else None

    assert eventually(again_finished, timeout=30, what="the resubmitted job").job.name == name
    first = jobs.get(job_id)
    assert first.job.state.state_type == "Completed" and first.job.version == 1

    sleeper_job = docker_job(f"{name}-sleeper", busybox_image, "sleep", "60")
    sleeper = jobs.put(ApiPutJobRequest(job=sleeper_job))
    assert sleeper is not None, capsys.readouterr().out
    listed = _all_job_ids(jobs, capsys)
    assert job_id in listed and sleeper.job_id in listed

    def running() -> Any:
        got = jobs.get(sleeper.job_id, include="executions")
        assert got is not None, capsys.readouterr().out
        if got.job.state.state_type != "Running" or not got.executions.items:
            return None
        [e] = got.executions.items
        return e if containers(f"bacalhau-executionID={e.id}") else None

    sleeping = eventually(running, timeout=30, what="the SDK's sleep job running")
    assert sleeping.compute_state.state_type == BID_ACCEPTED

    stopped = jobs.stop(sleeper.job_id, reason="stopped from the official SDK")
    assert stopped is not None, capsys.readouterr().out
    assert stopped.evaluation_id
    started = time.monotonic()

    def cancelled() -> Any:
        got = jobs.get(sleeper.job_id, include="executions")
        assert got is not None, capsys.readouterr().out
        [e] = got.executions.items
        done = got.job.state.state_type == "Stopped" and e.compute_state.state_type == CANCELLED
        return got if done and not containers(f"bacalhau-executionID={e.id}") else None

    final = eventually(cancelled, timeout=10, what="the stopped job's execution cancelled")
    assert time.monotonic() - started < 10
    assert "stopped from the official SDK" in (final.job.state.message or "")

    # Stopping a job that already completed is refused (the SDK prints the API error).
    capsys.readouterr()
    assert jobs.stop(job_id) is None
    assert "ConflictJobState" in capsys.readouterr().out
