"""A service whose node is stopped (SIGTERM: an operator restarting it) or killed (SIGKILL,
declared lost before it is back) gets its replica back on that node once the node is back,
and stays Running throughout."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest

from bacalhau.models import ExecutionStateType, JobStateType
from tests.integration.devstack import Devstack, eventually, submitted_job_id

pytestmark = pytest.mark.integration

E = ExecutionStateType
FAST = ["gossip_interval=0.2", "retry_delay=0.5"]


@pytest.mark.parametrize(
    ("nodes", "sig"),
    [(1, signal.SIGTERM), (2, signal.SIGTERM), (3, signal.SIGKILL)],
    ids=["1-node-sigterm", "2-nodes-sigterm", "3-nodes-sigkill"],
)
def test_a_service_replica_comes_back_with_its_node(
    tmp_path: Path, busybox_image: str, nodes: int, sig: signal.Signals
) -> None:
    """With as many replicas as nodes, the stopped node's replica has nowhere else to go
    (each other node runs a replica): it waits for its node."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=nodes, config=FAST)
    try:
        spec = tmp_path / "service.json"
        spec.write_text(
            json.dumps(
                {
                    "Name": f"svc-{uuid.uuid4().hex[:8]}",
                    "Type": "service",
                    "Count": nodes,
                    "Tasks": [
                        {
                            "Name": "main",
                            "Engine": {
                                "Type": "docker",
                                "Params": {
                                    "Image": busybox_image,
                                    "Entrypoint": ["sh", "-c", "echo up; sleep 600"],
                                },
                            },
                        }
                    ],
                }
            )
        )
        job_id = submitted_job_id(stack.ok("job", "run", str(spec), "--wait"))
        node = stack.node_named("compute-0")
        [first] = [e for e in stack.client.executions(job_id) if e.node_id == node.node_id]
        stack.kill_node("compute-0", sig)
        stack.wait_for_node_exit("compute-0")
        if sig == signal.SIGKILL:
            # Declared lost, and its replica waiting for a node, before the node is back.
            eventually(
                lambda: "waiting for a node" in stack.client.get_job(job_id).job.state_message,
                timeout=30,
                what="the replica waiting for a node",
            )
        stack.restart_node("compute-0")
        stack.wait_for_node("compute-0")
        try:
            again = eventually(
                lambda: (
                    [
                        e
                        for e in stack.client.executions(job_id)
                        if e.partition_index == first.partition_index
                        and e.id != first.id
                        and e.compute_state in (E.BID_ACCEPTED, E.RUNNING)
                    ]
                    or None
                ),
                timeout=30,
                what="the replica running again",
            )
        except AssertionError as err:
            raise AssertionError(f"{err}\n{stack.story(job_id)}") from None
        assert [e.node_id for e in again] == [node.node_id]
        assert stack.client.get_job(job_id).job.state == JobStateType.RUNNING
        stack.ok("job", "stop", job_id)
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()
