"""Work stuck in one compute node's run queue moves to a node that has room, with real
``bacalhau`` processes: a requester and two compute nodes of one CPU each (noop engine).

Node E runs a two-minute job. A small job placed when both nodes were full waits in E's
queue (E had over-subscription room left, the other node none). The other node then frees
up: the requester takes the waiting job back from E (only because it still waits there) and
runs it on the free node, long before E's run would have let it start.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from bacalhau.models import ExecutionStateType, JobStateType, NodeType
from tests.integration.devstack import Devstack, NodeProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("queue-moves")]

E = ExecutionStateType
ONE_CPU = "allocated_cpu=1"


def _job(path: Path, *, cpu: str, sleep: float, zone: str = "", not_zone: str = "") -> Path:
    job: dict[str, Any] = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"SleepSeconds": sleep}},
                "Resources": {"CPU": cpu},
            }
        ],
    }
    if zone:
        job["Constraints"] = [{"Key": "zone", "Operator": "=", "Values": [zone]}]
    if not_zone:
        job["Constraints"] = [{"Key": "zone", "Operator": "notin", "Values": [not_zone]}]
    path.write_text(json.dumps(job))
    return path


def _submit(stack: Devstack, spec: Path) -> str:
    return stack.ok("job", "run", "--no-wait", "--id-only", str(spec)).strip()


def _accepted_on(stack: Devstack, job_id: str) -> str | None:
    """The node an accepted (queued or running) execution of the job is on, if any."""
    for ex in stack.client.get_job(job_id, executions=True).executions:
        if ex.compute_state == E.BID_ACCEPTED:
            return ex.node_id
    return None


def test_a_job_waiting_in_a_busy_nodes_queue_moves_to_the_node_that_frees_up(
    tmp_path: Path,
) -> None:
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=1,
        engines="noop",
        config=[ONE_CPU, "queue_move_after=1s"],
    )
    node: NodeProcess | None = None
    try:
        node_dir = tmp_path / "e"
        stack.certify(node_dir)
        node = NodeProcess.compute(
            node_dir,
            stack.requester.grpc_address,
            *("--engines", "noop", "--labels", "zone=e", "-c", ONE_CPU),
        )
        computes = eventually(
            lambda: (
                [n for n in stack.client.list_nodes() if n.info.node_type == NodeType.COMPUTE]
                if len(stack.client.list_nodes()) >= 3
                else None
            ),
            timeout=60,
            what=f"node e joining:\n{node.output()}",
        )
        [e] = [n.info.node_id for n in computes if n.info.labels.get("zone") == "e"]
        [d] = [n.info.node_id for n in computes if n.info.node_id != e]

        # E runs for two minutes; D for a few seconds, with a small job queued behind.
        long_run = _submit(stack, _job(tmp_path / "long.json", cpu="1", sleep=120, zone="e"))
        assert eventually(lambda: _accepted_on(stack, long_run), timeout=30, what="long") == e
        short_run = _submit(stack, _job(tmp_path / "short.json", cpu="1", sleep=4, not_zone="e"))
        assert eventually(lambda: _accepted_on(stack, short_run), timeout=30, what="short") == d
        behind = _submit(stack, _job(tmp_path / "behind.json", cpu="0.5", sleep=0, not_zone="e"))
        assert eventually(lambda: _accepted_on(stack, behind), timeout=30, what="behind") == d

        # Both nodes are busy: only E has queue room left for this one.
        mover = _submit(stack, _job(tmp_path / "mover.json", cpu="0.5", sleep=0))
        first = eventually(lambda: _accepted_on(stack, mover), timeout=30, what="placed")
        assert first == e

        # D frees up in about four seconds; E's run has two minutes to go.
        done = eventually(
            lambda: (
                stack.client.get_job(mover, executions=True, history=True)
                if stack.client.get_job(mover).job.state.is_terminal()
                else None
            ),
            timeout=40,
            what="the waiting job completing elsewhere",
        )
        assert done.job.state == JobStateType.COMPLETED
        [completed] = [x for x in done.executions if x.compute_state == E.COMPLETED]
        assert completed.node_id == d
        [moved] = [x for x in done.executions if x.node_id == e]
        assert moved.compute_state == E.CANCELLED
        assert moved.compute_message.startswith(f"moved to node {d}: it waited ")
        said = [h.event.message for h in done.history or []]
        assert any(m.startswith(f"Moved to node {d}") for m in said), said
        # Before that, its history said where it waited.
        assert f"Waiting in node {e}'s run queue for room" in said, said
        # Nothing was lost or run twice: E's long run goes on, the others completed.
        assert stack.client.get_job(long_run).job.state == JobStateType.RUNNING
        for job_id in (short_run, behind):
            assert stack.client.get_job(job_id).job.state == JobStateType.COMPLETED
    finally:
        code = node.stop() if node is not None else 0
        stack.stop()
    assert code == 0


def test_a_job_waiting_in_a_queue_whose_node_stops_is_placed_again_without_an_attempt(
    tmp_path: Path,
) -> None:
    """SIGTERM of a compute node holding a queued execution: that execution never ran, so
    the job (one attempt in all) is placed again instead of failing."""
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=2,
        engines="noop",
        config=[ONE_CPU, "queue_move_after=0", "max_attempts=1"],
    )
    try:
        busy = [
            _submit(stack, _job(tmp_path / f"busy{i}.json", cpu="1", sleep=120)) for i in (0, 1)
        ]
        for job_id in busy:
            eventually(lambda j=job_id: _accepted_on(stack, j), timeout=30, what="busy")
        waiting = _submit(stack, _job(tmp_path / "waiting.json", cpu="0.5", sleep=0))
        node_id = eventually(lambda: _accepted_on(stack, waiting), timeout=30, what="placed")

        def said() -> list[str]:
            history = stack.client.get_job(waiting, history=True).history or []
            return [h.event.message for h in history]

        eventually(
            lambda: f"Waiting in node {node_id}'s run queue for room" in said(),
            timeout=30,
            what="the node reporting it waits",
        )
        os.kill(stack.node(node_id).pid, signal.SIGTERM)

        def lost() -> list[Any] | None:
            done = stack.client.get_job(waiting, executions=True)
            assert done.job.state != JobStateType.FAILED, done.job.state_message
            gone = [x for x in done.executions if x.node_id == node_id and x.compute_state
                    == E.FAILED]  # fmt: skip
            return gone or None

        [gone] = eventually(lost, timeout=30, what="its execution failing with its node")
        assert "it never started" in gone.compute_message, gone.compute_message
        # Placed again (on the other node, in its queue): one attempt in all, not used up.
        eventually(
            lambda: len(stack.client.get_job(waiting, executions=True).executions) == 2,
            timeout=30,
            what="the job placed again",
        )
        assert stack.client.get_job(waiting).job.state != JobStateType.FAILED
    finally:
        stack.stop()
