"""Ctrl+C on a devstack: every node process stops and running work is cleaned up."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bacalhau.models import JobStateType
from tests.integration.devstack import (
    Devstack,
    containers,
    eventually,
    process_alive,
    submitted_job_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-sigint")]


def test_sigint_stops_every_node_and_their_containers(tmp_path: Path, busybox_image: str) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2)
    try:
        submitted = stack.ok("docker", "run", "--no-wait", busybox_image, "--", "sleep", "60")
        job_id = submitted_job_id(submitted)

        def running() -> bool:
            return stack.client.get_job(job_id).job.state == JobStateType.RUNNING and bool(
                containers(f"bacalhau-jobID={job_id}")
            )

        eventually(running, timeout=30, what="the sleeping job's container")
        pids = [n.pid for n in stack.nodes]
    except BaseException:
        stack.stop(check=False)
        raise
    # stop() asserts exit code 0, no surviving node process and no container of the job.
    stack.stop(sig=signal.SIGINT)
    assert not any(process_alive(pid) for pid in pids)
    assert containers(f"bacalhau-jobID={job_id}") == []
