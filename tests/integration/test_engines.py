"""A cluster built by hand around a small devstack: a requester, plus a compute node that
offers only docker, certified with ``bacalhau ca issue`` and started with ``bacalhau serve``.
A WASM job fails saying which node was rejected and why; a Docker job runs on that node; on
SIGTERM the devstack takes every process with it. A compute node running a sleeping WASM
module stops at once on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from bacalhau.models import Connection, ExecutionStateType, JobStateType, NodeType
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    containers,
    eventually,
    process_alive,
    run_bacalhau,
    submitted_job_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-docker-only")]


def test_job_for_an_engine_no_node_offers_fails_naming_the_rejected_nodes(
    tmp_path: Path, busybox_image: str, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=0)
    node: NodeProcess | None = None
    try:
        [requester] = stack.nodes
        assert requester.role == "requester" and process_alive(requester.pid)

        node_dir = tmp_path / "docker-only"
        ca = ["--ca-dir", str(stack.ca_dir)]
        issued = run_bacalhau(
            ["ca", "issue", *ca, "--data-dir", str(node_dir), "--host", "127.0.0.1"]
        )
        assert issued.returncode == 0, issued.stderr
        node_id = issued.stdout.split("Node ID: ", 1)[1].split()[0]
        node = NodeProcess.compute(
            node_dir, requester.grpc_address, "--engines", "docker", "--name", "docker-only"
        )

        def joined() -> bool:
            listed = {n.info.node_id: n for n in stack.client.list_nodes()}
            state = listed.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=30, what="the docker-only node joining")
        [compute] = [n for n in stack.client.list_nodes() if n.info.node_type == NodeType.COMPUTE]
        assert compute.info.compute is not None
        assert compute.info.compute.execution_engines == ["docker"]

        done = stack.cli("wasm", "run", str(wasm_modules / "hello.wasm"))
        assert done.returncode == 1, done.stdout
        job_id = submitted_job_id(done.stdout)
        reason = f"node {node_id} does not support wasm: its engines are docker"
        assert reason in done.stderr, done.stderr
        details = stack.client.get_job(job_id, executions=True)
        assert details.job.state == JobStateType.FAILED
        assert reason in details.job.state_message
        assert "not enough nodes" in details.job.state_message
        assert details.executions == []  # the node was ruled out, never asked

        # Control: the same node runs what it does offer.
        out = stack.ok("docker", "run", "--id-only", busybox_image, "--", "echo", "docker ok")
        ran = stack.client.get_job(out.strip(), executions=True)
        assert ran.job.state == JobStateType.COMPLETED
        [execution] = ran.executions
        assert execution.node_id == node_id
        assert execution.compute_state == ExecutionStateType.COMPLETED
        assert execution.run_output is not None
        assert execution.run_output.stdout == "docker ok\n"

        # A node stopped while a job runs takes the job's container with it.
        sleeper = stack.ok(
            "docker", "run", "--no-wait", "--id-only", busybox_image, "--", "sleep", "60"
        ).strip()

        def container() -> list[str] | None:
            executions = stack.client.get_job(sleeper, executions=True).executions
            if not executions:
                return None
            return containers(f"bacalhau-executionID={executions[0].id}") or None

        running = eventually(container, timeout=30, what="the sleep job's container")
        assert node.stop() == 0, node.output()
        assert containers(f"bacalhau-jobID={sleeper}") == [], running
    finally:
        code = node.stop() if node is not None else 0
        stack.stop()
    assert code == 0, node.output() if node is not None else ""
    assert not process_alive(requester.pid)


#: Seconds a compute node may take to stop on SIGTERM, well below the devstack's kill grace.
PROMPT_STOP_SECONDS = 5.0


def test_sigterm_stops_a_compute_node_running_a_sleeping_wasm_module_at_once(
    tmp_path: Path, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=0)
    node: NodeProcess | None = None
    try:
        [requester] = stack.nodes
        node_dir = tmp_path / "wasm-only"
        ca = ["--ca-dir", str(stack.ca_dir)]
        issued = run_bacalhau(
            ["ca", "issue", *ca, "--data-dir", str(node_dir), "--host", "127.0.0.1"]
        )
        assert issued.returncode == 0, issued.stderr
        node = NodeProcess.compute(node_dir, requester.grpc_address, "--engines", "wasm")
        eventually(
            lambda: any(n.info.node_type == NodeType.COMPUTE for n in stack.client.list_nodes()),
            timeout=30,
            what="the WASM node joining",
        )
        out = stack.ok(
            "wasm", "run", "--no-wait", "--id-only", str(wasm_modules / "sleeper.wasm"), "600"
        )
        job_id = out.strip()
        eventually(
            lambda: stack.client.get_job(job_id).job.state == JobStateType.RUNNING,
            timeout=30,
            what="the sleeping WASM job",
        )
        node.process.send_signal(signal.SIGTERM)
        try:
            code = node.process.wait(timeout=PROMPT_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the compute node still runs {PROMPT_STOP_SECONDS:.0f}s after SIGTERM"
            ) from None
        assert code == 0, node.output()
    finally:
        if node is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()
        stack.stop()
