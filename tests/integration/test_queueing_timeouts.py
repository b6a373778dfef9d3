"""Queueing and timeouts with real ``bacalhau`` processes, a real Docker engine and WASM.

A job no node can take waits in Queued, its history saying why (once), and runs as soon as
a suitable compute node joins; its ``Reschedule`` block reads back unchanged over REST. A job
whose ExecutionTimeout passes fails with the ExecutionTimeout error, and its container (or
WASM run) is gone.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from bacalhau.models import ExecutionStateType, JobStateType, NodeType
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    containers,
    eventually,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("queueing-timeouts")]

POLICY = {"Attempts": 2, "AttemptsPerNode": 1, "Delay": "500ms", "MaxDelay": "5s"}


def _job_file(path: Path, task: dict[str, object], **job: object) -> Path:
    path.write_text(json.dumps({"Type": "batch", "Count": 1, "Tasks": [task], **job}))
    return path


def _docker(image: str, *command: str, **timeouts: int) -> dict[str, object]:
    return {
        "Name": "main",
        "Engine": {"Type": "docker", "Params": {"Image": image, "Parameters": list(command)}},
        "Publisher": {"Type": "local"},
        "Timeouts": timeouts,
    }


def _state(stack: Devstack, job_id: str) -> JobStateType:
    return stack.client.get_job(job_id).job.state


def test_a_job_no_node_can_take_waits_saying_why_and_runs_when_a_suitable_node_joins(
    tmp_path: Path, busybox_image: str
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1)
    node: NodeProcess | None = None
    try:
        spec = _job_file(
            tmp_path / "job.json",
            _docker(busybox_image, "echo", "placed in eu", QueueTimeout=300),
            Constraints=[{"Key": "zone", "Operator": "=", "Values": ["eu"]}],
            Reschedule=POLICY,
        )
        job_id = stack.ok("job", "run", "--no-wait", "--id-only", str(spec)).strip()
        eventually(lambda: _state(stack, job_id) == JobStateType.QUEUED, timeout=30, what="Queued")
        # The v1 REST API returns the job's retry policy exactly as submitted.
        with urllib.request.urlopen(f"{stack.api_url}/api/v1/orchestrator/jobs/{job_id}") as r:
            assert json.load(r)["Job"]["Reschedule"] == POLICY

        # The requester looks at it again meanwhile (its safety-net timer, 1 s then
        # growing): the reason, unchanged, is said once.
        time.sleep(3)
        history = stack.client.get_job(job_id, history=True).history
        queued = [h.event.message for h in history if h.event.topic == "Queueing"]
        assert len(queued) == 1, queued
        assert queued[0].startswith("Job queued: waiting for a node:")
        assert "does not match the constraints" in queued[0]

        node_dir = tmp_path / "eu"
        stack.certify(node_dir)
        node = NodeProcess.compute(
            node_dir, stack.requester.grpc_address, "--engines", "docker", "--labels", "zone=eu"
        )
        eventually(
            lambda: _state(stack, job_id) == JobStateType.COMPLETED,
            timeout=60,
            what=f"the queued job completing on the new node:\n{node.output()}",
        )
        done = stack.client.get_job(job_id, executions=True)
        [execution] = done.executions
        eu = [
            n
            for n in stack.client.list_nodes()
            if n.info.node_type == NodeType.COMPUTE and n.info.labels.get("zone") == "eu"
        ]
        assert [n.info.node_id for n in eu] == [execution.node_id]
        assert execution.run_output is not None
        assert execution.run_output.stdout == "placed in eu\n"
    finally:
        code = node.stop() if node is not None else 0
        stack.stop()
    assert code == 0


def test_an_execution_past_its_timeout_fails_with_the_timeout_error_and_leaves_nothing(
    tmp_path: Path, busybox_image: str, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1)
    try:
        once = {"Attempts": 1}
        docker = _job_file(
            tmp_path / "docker.json",
            _docker(busybox_image, "sleep", "600", ExecutionTimeout=2),
            Reschedule=once,
        )
        docker_job = stack.ok("job", "run", "--no-wait", "--id-only", str(docker)).strip()
        wasm = yaml.safe_load(
            stack.ok("wasm", "run", "--dry-run", str(wasm_modules / "sleeper.wasm"), "600")
        )
        wasm["Tasks"][0]["Timeouts"] = {"ExecutionTimeout": 2}
        wasm["Reschedule"] = once
        wasm_file = tmp_path / "wasm.json"
        wasm_file.write_text(json.dumps(wasm))
        wasm_job = stack.ok("job", "run", "--no-wait", "--id-only", str(wasm_file)).strip()

        for job_id in (docker_job, wasm_job):
            eventually(
                lambda job_id=job_id: _state(stack, job_id).is_terminal(),  # type: ignore[misc]
                timeout=60,
                what=f"job {job_id} timing out",
            )
            details = stack.client.get_job(job_id, history=True, executions=True)
            assert details.job.state == JobStateType.FAILED, details.job.state_message
            [failed] = [h for h in details.history if h.job_state_new == JobStateType.FAILED]
            assert failed.event.details["ErrorCode"] == "ExecutionTimeout", failed.event
            [execution] = details.executions
            assert execution.compute_state == ExecutionStateType.FAILED
        # The container is gone, and the compute node runs nothing any more.
        assert containers(f"bacalhau-jobID={docker_job}") == []
        eventually(
            lambda: all(
                n.info.compute is None or n.info.compute.running_executions == 0
                for n in stack.client.list_nodes()
            ),
            timeout=30,
            what="the compute node reporting no running execution",
        )
    finally:
        stack.stop()
