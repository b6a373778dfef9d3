"""Ctrl+C on a devstack: every node process stops, promptly, and running work is cleaned up,
for Docker and WASM jobs alike."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bacalhau.models import JobStateType
from bacalhau.node._devstack import STOP_GRACE_SECONDS
from tests.integration.devstack import (
    Devstack,
    containers,
    eventually,
    process_alive,
    submitted_job_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-sigint")]


def test_sigint_stops_every_node_and_their_docker_and_wasm_jobs(
    tmp_path: Path, busybox_image: str, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2)
    try:
        submitted = stack.ok("docker", "run", "--no-wait", busybox_image, "--", "sleep", "60")
        docker_job = submitted_job_id(submitted)
        submitted = stack.ok("wasm", "run", "--no-wait", str(wasm_modules / "sleeper.wasm"), "60")
        wasm_job = submitted_job_id(submitted)

        def running(job_id: str) -> bool:
            return stack.client.get_job(job_id).job.state == JobStateType.RUNNING

        eventually(
            lambda: running(docker_job) and bool(containers(f"bacalhau-jobID={docker_job}")),
            timeout=30,
            what="the sleeping Docker job's container",
        )
        eventually(lambda: running(wasm_job), timeout=30, what="the sleeping WASM job")
        pids = [n.pid for n in stack.nodes]
    except BaseException:
        stack.stop(check=False)
        raise
    started = time.monotonic()
    # stop() asserts exit code 0, no surviving node process and no container of the jobs.
    stack.stop(sig=signal.SIGINT)
    # Every node stopped on its own: the devstack kills those still there after its grace.
    assert time.monotonic() - started < STOP_GRACE_SECONDS
    assert not any(process_alive(pid) for pid in pids)
    assert containers(f"bacalhau-jobID={docker_job}") == []
