"""Just after a requester starts, compute nodes may not have (re)joined yet: a job submitted
then waits for them instead of failing and runs on the first node that joins, and a job
running on a node across a requester restart is not failed before its node is back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bacalhau.client import Client
from bacalhau.models import Connection, ExecutionStateType, Job, JobStateType, NodeType
from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import Devstack, NodeProcess, eventually, run_bacalhau

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-rejoin-grace")]


def test_job_submitted_before_any_node_joined_runs_when_one_joins(
    tmp_path: Path, busybox_image: str
) -> None:
    # A devstack without compute nodes: a requester that has just started, alone.
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=0)
    node: NodeProcess | None = None
    try:
        job_id = stack.ok(
            "docker", "run", "--no-wait", "--id-only", busybox_image, "--", "echo", "joined"
        ).strip()

        def waiting() -> bool:
            details = stack.client.get_job(job_id, history=True)
            events = [h.event.message for h in details.history]
            return details.job.state == JobStateType.QUEUED and any(
                "waiting for compute nodes to join" in m for m in events
            )

        eventually(waiting, timeout=10, what="the job queued, waiting for compute nodes")

        node_dir = tmp_path / "compute"
        stack.certify(node_dir)
        node = NodeProcess.compute(node_dir, stack.requester.grpc_address, "--engines", "docker")

        def completed() -> bool:
            job = stack.client.get_job(job_id).job
            assert job.state != JobStateType.FAILED, job.state_message
            return job.state == JobStateType.COMPLETED

        eventually(completed, timeout=60, what="the waiting job completing on the new node")
        details = stack.client.get_job(job_id, executions=True)
        [execution] = details.executions
        assert execution.compute_state == ExecutionStateType.COMPLETED
        assert execution.run_output is not None and execution.run_output.stdout == "joined\n"
        [compute] = [n for n in stack.client.list_nodes() if n.info.node_id == execution.node_id]
        assert compute.connection == Connection.CONNECTED
    finally:
        code = node.stop() if node is not None else 0
        stack.stop()
    assert code == 0, node.output() if node is not None else ""


def _requester(data_dir: Path, grpc_port: int) -> tuple[NodeProcess, str]:
    """A requester on a fixed bprotocol port (compute nodes find it again after a restart);
    returns it with its API URL once it runs."""
    node = NodeProcess(
        data_dir,
        [
            "--orchestrator",
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc_port),
            "--api-host",
            "127.0.0.1",
            "--api-port",
            "0",
        ],
    )
    match = eventually(
        lambda: re.search(r"API: (http://\S+)", node.output()) or node.process.poll() is not None,
        timeout=60,
        what="the requester start",
    )
    assert isinstance(match, re.Match), node.output()
    return node, match.group(1)


def test_running_job_survives_a_requester_restart(tmp_path: Path, busybox_image: str) -> None:
    ca = ["--ca-dir", str(tmp_path / "ca")]
    assert run_bacalhau(["ca", "init", *ca]).returncode == 0
    for name in ("requester", "compute"):
        issued = run_bacalhau(["ca", "issue", *ca, "--data-dir", str(tmp_path / name)])
        assert issued.returncode == 0, issued.stderr
    grpc_port = free_port()
    requester, api = _requester(tmp_path / "requester", grpc_port)
    compute = NodeProcess.compute(
        tmp_path / "compute", f"127.0.0.1:{grpc_port}", "--engines", "docker"
    )
    nodes = [requester, compute]
    try:
        with Client(api) as client:
            eventually(
                lambda: any(
                    n.info.node_type == NodeType.COMPUTE and n.connection == Connection.CONNECTED
                    for n in client.list_nodes()
                ),
                timeout=30,
                what="the compute node joining",
            )
            job_id = client.submit(sleeper(busybox_image)).job_id
            eventually(
                lambda: client.get_job(job_id).job.state == JobStateType.RUNNING,
                timeout=30,
                what="the job running",
            )
            [before] = client.get_job(job_id, executions=True).executions
        assert requester.stop() == 0, requester.output()

        requester, api = _requester(tmp_path / "requester", grpc_port)
        nodes[0] = requester
        with Client(api) as client:

            def finished() -> JobStateType | None:
                state = client.get_job(job_id).job.state
                return state if state.is_terminal() else None

            state = eventually(finished, timeout=60, what="the job finishing after the restart")
            details = client.get_job(job_id, executions=True)
            assert state == JobStateType.COMPLETED, details.job.state_message
            # The same execution finished: it was not failed while its node was unknown.
            [after] = details.executions
            assert after.id == before.id
            assert after.compute_state == ExecutionStateType.COMPLETED
    finally:
        codes = [n.stop() for n in reversed(nodes)]
    assert codes == [0, 0], [n.output() for n in nodes]


def sleeper(image: str) -> Job:
    """A Docker job that outlives a requester restart."""
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": image, "Entrypoint": ["sleep", "8"]},
                    },
                }
            ],
        }
    )
