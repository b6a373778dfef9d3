"""A compute node whose clock is two hours ahead of its requester's, with real ``bacalhau``
processes: the node runs under libfaketime (its wall and monotonic clocks shifted, as on a
machine whose clock is wrong). A job with a TotalTimeout of an hour and one with a QueueTimeout
that waits in the node's run queue both run there, instead of failing at once as "timed out";
the node says how far the requester's clock is from its own.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bacalhau.client import Client
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Job, JobStateType
from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import Devstack, NodeProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("clock-skew")]

#: Installed by scripts/setup.sh (Debian's faketime package).
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def _job(path: Path, *, sleep: float, cpu: str, timeouts: dict[str, int]) -> Path:
    job: dict[str, Any] = {
        "Type": "batch",
        "Count": 1,
        "Constraints": [{"Key": "clock", "Operator": "=", "Values": ["ahead"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"SleepSeconds": sleep}},
                "Resources": {"CPU": cpu},
                "Timeouts": timeouts,
            }
        ],
    }
    path.write_text(json.dumps(job))
    return path


def _stepping_clock(offset: Path) -> tuple[Path, dict[str, str]]:
    """The environment of a process whose wall clock is ``offset``'s content ("+600": ten
    minutes ahead; re-read each second, so writing it steps the clock), its monotonic and
    boot-time clocks left alone (an NTP step)."""
    offset.write_text("+0\n")
    return offset, {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def test_a_compute_node_hours_ahead_gives_jobs_their_timeouts(tmp_path: Path) -> None:
    assert LIBFAKETIME.exists(), "scripts/setup.sh installs faketime"
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, engines="noop")
    node: NodeProcess | None = None
    try:
        node_dir = tmp_path / "ahead"
        stack.certify(node_dir)
        node = NodeProcess.compute(
            node_dir,
            stack.requester.grpc_address,
            *("--engines", "noop", "--labels", "clock=ahead", "-c", "allocated_cpu=1"),
            env={"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "+2h"},
        )
        node.wait_running()
        ahead = eventually(
            lambda: next(
                (
                    n.info.node_id
                    for n in stack.client.list_nodes()
                    if n.info.labels.get("clock") == "ahead"
                ),
                None,
            ),
            timeout=30,
            what="the node ahead joining",
        )
        # Runs for 2 s, holding the node's one CPU; the second job waits in its queue meanwhile.
        total = _job(tmp_path / "total.json", sleep=2, cpu="1", timeouts={"TotalTimeout": 3600})
        queued = _job(tmp_path / "queued.json", sleep=0, cpu="1", timeouts={"QueueTimeout": 600})
        first = stack.ok("job", "run", "--no-wait", "--id-only", str(total)).strip()
        second = stack.ok("job", "run", "--no-wait", "--id-only", str(queued)).strip()
        for job_id in (first, second):
            done = eventually(
                lambda job_id=job_id: (
                    job
                    if (
                        job := stack.client.get_job(job_id, executions=True)
                    ).job.state.is_terminal()
                    else None
                ),
                timeout=60,
                what=f"job {job_id} ending",
            )
            assert done.job.state == JobStateType.COMPLETED, done.job.state_message
            assert [ex.node_id for ex in done.executions] == [ahead]
        assert "is 2h0m0s behind this node's" in node.output()
    finally:
        if node is not None:
            node.stop()
        stack.stop()


def test_a_requester_whose_wall_clock_steps_forward_keeps_running_work(tmp_path: Path) -> None:
    """The requester's wall clock steps 10 minutes forward (its monotonic and boot-time
    clocks do not: an NTP correction) while a job with an ExecutionTimeout of 20 s and a
    TotalTimeout of 60 s runs for 6 s. Its backstops leave the step out: the job completes."""
    offset, clock = _stepping_clock(tmp_path / "requester.faketime")
    requester_dir = tmp_path / "requester"
    api_port = free_port()
    requester = NodeProcess(
        requester_dir,
        ["--orchestrator", "--grpc-host", "127.0.0.1", "--grpc-port", str(free_port()),
         "--api-host", "127.0.0.1", "--api-port", str(api_port), "--api-grpc-port", "0"],
        env=clock,
    )  # fmt: skip
    node: NodeProcess | None = None
    try:
        requester.wait_running()
        address = re.search(r"bprotocol: (\S+)", requester.output())
        assert address is not None, requester.output()
        node_dir = tmp_path / "compute"
        ClusterCA.load(requester_dir / "cluster-ca").issue_node_certificate(
            NodeIdentity.load_or_create(node_dir), data_dir=node_dir
        )
        node = NodeProcess.compute(node_dir, address.group(1), "--engines", "noop")
        node.wait_running()
        client = Client(f"http://127.0.0.1:{api_port}")
        spec = _job(tmp_path / "job.json", sleep=6, cpu="0.1", timeouts={})
        job = json.loads(spec.read_text())
        job["Constraints"] = []
        job["Tasks"][0]["Timeouts"] = {"ExecutionTimeout": 20, "TotalTimeout": 60}
        job_id = eventually(
            lambda: client.submit(Job.from_dict(job)).job_id,
            timeout=30,
            what="a submission the compute node can take",
        )
        eventually(
            lambda: client.get_job(job_id).job.state == JobStateType.RUNNING or None,
            timeout=30,
            what="the job running",
        )
        offset.write_text("+600\n")  # ten minutes forward, now
        done = eventually(
            lambda: j if (j := client.get_job(job_id)).job.state.is_terminal() else None,
            timeout=60,
            what="the job ending",
        )
        assert done.job.state == JobStateType.COMPLETED, done.job.state_message
        assert "the wall clock stepped forward by 6" in requester.output()
    finally:
        if node is not None:
            node.stop()
        # libfaketime fails Python's blocking sleeps when the monotonic clock is left alone,
        # which the requester's shutdown may meet: only its stopping is asserted.
        with contextlib.suppress(AssertionError):
            requester.stop()
        assert requester.process.poll() is not None


def test_a_requester_restarted_after_a_step_keeps_the_queued_jobs(tmp_path: Path) -> None:
    """The requester's wall clock steps 10 minutes forward while it is stopped. Restarted
    on the same data dir (and boot), it sees the step against the boot-time clock: a job
    waiting for a node, with a QueueTimeout of 5 minutes, keeps waiting instead of failing
    at once as "timed out"."""
    offset, clock = _stepping_clock(tmp_path / "requester.faketime")
    requester_dir = tmp_path / "requester"
    api_port = free_port()
    args = ["--orchestrator", "--grpc-host", "127.0.0.1", "--grpc-port", str(free_port()),
            "--api-host", "127.0.0.1", "--api-port", str(api_port), "--api-grpc-port", "0",
            "-c", "housekeeping_interval=0.5", "-c", "rejoin_grace=0"]  # fmt: skip
    requester = NodeProcess(requester_dir, args, env=clock)
    try:
        requester.wait_running()
        client = Client(f"http://127.0.0.1:{api_port}")
        job = json.loads(_job(tmp_path / "job.json", sleep=0, cpu="0.1", timeouts={}).read_text())
        job["Tasks"][0]["Timeouts"] = {"QueueTimeout": 300}
        job_id = client.submit(Job.from_dict(job)).job_id
        eventually(
            lambda: client.get_job(job_id).job.state == JobStateType.QUEUED or None,
            timeout=30,
            what="the job waiting for a node",
        )
        client.close()
        with contextlib.suppress(AssertionError):
            requester.stop()
        offset.write_text("+600\n")  # ten minutes forward while it is down
        requester = NodeProcess(requester_dir, args, env=clock)
        requester.wait_running()
        client = Client(f"http://127.0.0.1:{api_port}")
        time.sleep(3)  # several housekeeping passes, each of which would fail an overdue job
        got = client.get_job(job_id).job
        assert got.state == JobStateType.QUEUED, got.state_message
        assert "while this node was down" in requester.output()
        client.close()
    finally:
        with contextlib.suppress(AssertionError):
            requester.stop()
        assert requester.process.poll() is not None
