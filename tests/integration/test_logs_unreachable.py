"""Logs whose node cannot give them, with real processes: a compute node frozen (SIGSTOP)
after its job ended is held dead by the cluster, and `job logs` answers at once with the kept
start of the output and an error saying that it is only the start, never a silent cut; once
the node is back, the whole output. A node that is silent is not waited on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bacalhau.models import Connection, JobStateType
from tests.integration.devstack import FAST_GOSSIP, Devstack, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("logs-unreachable")]

#: 1..1000, one per line: 3,893 bytes, more than the 2 KiB a finished execution keeps.
SCRIPT = "seq 1 1000"
FULL = "".join(f"{i}\n" for i in range(1, 1001))


def test_logs_of_a_frozen_node_are_the_kept_start_and_say_so_then_all_once_back(
    tmp_path: Path, busybox_image: str
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST_GOSSIP)
    node = stack.node_named("compute-0")
    frozen = False
    try:
        job_id = stack.ok(
            "docker", "run", "--id-only", busybox_image, "--", "sh", "-c", SCRIPT
        ).strip()
        assert stack.client.get_job(job_id).job.state == JobStateType.COMPLETED
        assert stack.ok("job", "logs", job_id) == FULL

        os.kill(node.pid, signal.SIGSTOP)
        frozen = True
        stack.wait_for_node("compute-0", connection=Connection.DISCONNECTED)
        began = time.monotonic()
        done = stack.cli("job", "logs", job_id, timeout=60)
        assert time.monotonic() - began < 10, "the CLI waited on a node the cluster holds dead"
        assert done.returncode == 1, done
        assert FULL.startswith(done.stdout) and 0 < len(done.stdout) < len(FULL)
        assert "only the start" in done.stderr and "disconnected" in done.stderr

        os.kill(node.pid, signal.SIGCONT)
        frozen = False
        stack.wait_for_node("compute-0")
        assert eventually(
            lambda: stack.cli("job", "logs", job_id).stdout == FULL or None,
            timeout=20,
            what="the whole output once the node is back",
        )
    finally:
        if frozen:
            os.kill(node.pid, signal.SIGCONT)
        stack.stop(check=False)
