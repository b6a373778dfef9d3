"""Nodes never outlive the devstack that started them, even one killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from bacalhau.models import JobStateType
from tests.integration.devstack import (
    Devstack,
    bacalhau_command,
    containers,
    eventually,
    node_env,
    process_alive,
    submitted_job_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-orphans")]

#: What "at once" means for an orphan: its graceful stop, container removal included.
ORPHAN_EXIT_SECONDS = 10.0


def sleeping_job(stack: Devstack, image: str) -> str:
    """The ID of a Docker job that sleeps for 10 minutes, once its container runs."""
    job_id = submitted_job_id(stack.ok("docker", "run", "--no-wait", image, "--", "sleep", "600"))

    def running() -> bool:
        return stack.client.get_job(job_id).job.state == JobStateType.RUNNING and bool(
            containers(f"bacalhau-jobID={job_id}")
        )

    eventually(running, timeout=30, what="the sleeping job's container")
    return job_id


def test_a_node_stops_gracefully_when_its_lifeline_closes(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    subprocess.run(
        bacalhau_command("ca", "init", "--ca-dir", str(tmp_path / "ca")), check=True, timeout=60
    )
    subprocess.run(
        bacalhau_command(
            "ca", "issue", "--ca-dir", str(tmp_path / "ca"), "--data-dir", str(data_dir)
        ),
        check=True,
        timeout=60,
    )
    read_end, write_end = os.pipe()
    log = tmp_path / "serve.log"
    try:
        with log.open("wb") as out:
            node = subprocess.Popen(
                bacalhau_command(
                    "serve",
                    "--orchestrator",
                    "--data-dir",
                    str(data_dir),
                    "--api-host",
                    "127.0.0.1",
                    "--api-port",
                    "0",
                    "--grpc-host",
                    "127.0.0.1",
                    "--grpc-port",
                    "0",
                    "--parent-fd",
                    str(read_end),
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=node_env(),
                pass_fds=(read_end,),
            )
    finally:
        os.close(read_end)
    try:
        eventually(
            lambda: "is running" in log.read_text() or node.poll() is not None,
            timeout=60,
            what="the node started",
        )
        assert node.poll() is None, log.read_text()
        os.close(write_end)  # what the kernel does when the starter dies
        write_end = -1
        code = node.wait(timeout=ORPHAN_EXIT_SECONDS)
        assert code == 0, log.read_text()
        assert "the process that started this node is gone" in log.read_text()
    finally:
        if write_end >= 0:
            os.close(write_end)
        if node.poll() is None:
            node.kill()
            node.wait()


def test_sigkilled_devstack_takes_its_nodes_and_their_containers_along(
    tmp_path: Path, busybox_image: str
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2)
    try:
        job_id = sleeping_job(stack, busybox_image)
        pids = [n.pid for n in stack.nodes]
    except BaseException:
        stack.stop(check=False)
        raise
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait(timeout=10)
    try:
        eventually(
            lambda: not any(process_alive(pid) for pid in pids),
            timeout=ORPHAN_EXIT_SECONDS,
            what="every node process exiting after the devstack was killed",
        )
        # A graceful stop: the compute node removed the job's container on its way out.
        assert containers(f"bacalhau-jobID={job_id}") == []
    finally:
        stack.stop(check=False)


def test_a_sigkilled_compute_nodes_containers_are_removed_at_once(
    tmp_path: Path, busybox_image: str
) -> None:
    """Not when the node next starts: the job runs again elsewhere meanwhile."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1)
    try:
        job_id = sleeping_job(stack, busybox_image)
        [compute] = stack.compute
        stack.kill_node(compute.name)
        eventually(
            lambda: containers(f"bacalhau-jobID={job_id}") == [],
            timeout=ORPHAN_EXIT_SECONDS,
            what="the killed node's container removed",
        )
    finally:
        stack.stop(check=False)
