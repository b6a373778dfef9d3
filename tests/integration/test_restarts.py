"""Restarts lose nothing. A requester SIGKILLed while a job runs and started again with the
same command finishes that job (its result, sent while the requester was down, arrives from
the compute node's outbox) and still lists the jobs it completed before. A compute node
SIGKILLed mid-job and restarted from its data dir reports the interrupted execution as
failed, removes its container, and the job completes with a new execution, whose results
are still downloaded after the node is killed and restarted once more."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bacalhau.client import AsyncGrpcClient, LogLine
from bacalhau.compute import RESTART_MESSAGE
from bacalhau.models import Execution, ExecutionStateType, Job, JobStateType, LogStream
from tests.integration.devstack import (
    FAST_GOSSIP,
    Devstack,
    bacalhau_command,
    containers,
    eventually,
)
from tests.integration.test_failover import finished, running_execution

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("restarts")]

FAST = [*FAST_GOSSIP, "rejoin_grace=20"]


def shell_job(image: str, script: str) -> Job:
    """A Docker batch job running ``script`` in ``sh``."""
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": image, "Entrypoint": ["sh", "-c", script]},
                    },
                }
            ],
        }
    )


def sleeper(image: str, seconds: int, say: str) -> Job:
    """A Docker job that sleeps, then prints ``say``."""
    return shell_job(image, f"sleep {seconds}; echo {say}")


def _kill_its_node_once_running(stack: Devstack, job_id: str) -> Execution:
    """SIGKILL compute-0 once the job's container runs there; returns that execution."""
    first = eventually(
        lambda: (
            ex
            if (ex := running_execution(stack, job_id)) is not None
            and containers(f"bacalhau-executionID={ex.id}")
            else None
        ),
        timeout=20,
        what="the job's container running",
    )
    stack.kill_node("compute-0")
    assert stack.wait_for_node_exit("compute-0").exit_code == -9
    return first


def _explain(stack: Devstack, executions: list[Execution]) -> str:
    """Why a job has more executions than it should: each one's states and last message,
    and the end of the requester's log."""
    rows = [
        f"{e.id} on {e.node_id}: {e.compute_state.name}/{e.desired_state.name} "
        f"({e.compute_message or e.desired_message})"
        for e in executions
    ]
    log = stack.requester.log.read_text(errors="replace")[-3000:]
    return "\n".join([*rows, "requester log:", log])


def test_requester_killed_mid_job_loses_nothing(tmp_path: Path, busybox_image: str) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST)
    try:
        before = stack.client.submit(sleeper(busybox_image, 0, "before")).job_id
        eventually(lambda: finished(stack, before), timeout=20, what="the first job finishing")
        job_id = stack.client.submit(sleeper(busybox_image, 3, "survived")).job_id
        eventually(lambda: running_execution(stack, job_id), timeout=20, what="the job running")

        stack.kill_node("requester")
        assert stack.wait_for_node_exit("requester").exit_code == -9
        # Down for a few seconds: the job finishes meanwhile, its result waits in the
        # compute node's outbox.
        time.sleep(4)
        stack.restart_node("requester")
        stack.wait_for_node("requester", timeout=20)

        state = eventually(lambda: finished(stack, job_id), timeout=25, what="the job finishing")
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        # The same execution: nothing failed, nothing rerun.
        assert len(details.executions) == 1, _explain(stack, details.executions)
        [ex] = details.executions
        assert ex.compute_state == ExecutionStateType.COMPLETED
        assert ex.run_output is not None and ex.run_output.stdout == "survived\n"
        results = tmp_path / "results"
        stack.ok("job", "get", job_id, "--output-dir", str(results))
        assert (results / "stdout").read_text() == "survived\n"
        # The job completed before the kill is still there.
        assert {before, job_id} <= set(stack.job_ids())
        assert stack.client.get_job(before).job.state == JobStateType.COMPLETED
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_waiting_cli_rides_out_a_requester_restart(tmp_path: Path, busybox_image: str) -> None:
    """`bacalhau docker run` waiting on its job while the requester is SIGKILLed and started
    again: it says it lost contact, tries again, and ends with the job's output, not with
    "cannot reach the API" (the job was submitted and went on)."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST)
    try:
        waiting = subprocess.Popen(
            bacalhau_command(
                "docker", "run", busybox_image, "--", "sh", "-c", "sleep 4; echo rode-it-out"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=stack.env(),
        )
        assert waiting.stdout is not None
        submitted = waiting.stdout.readline()
        assert "Job ID: " in submitted, submitted
        job_id = submitted.split("Job ID: ", 1)[1].split()[0]
        eventually(lambda: running_execution(stack, job_id), timeout=20, what="the job running")
        stack.kill_node("requester")
        assert stack.wait_for_node_exit("requester").exit_code == -9
        time.sleep(2)
        stack.restart_node("requester")
        out, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, err
        assert "rode-it-out" in out, out
        assert f"lost contact with the API while following job {job_id}" in err, err
        assert "in contact with the API again" in err, err
        assert "start a node with" not in err, err
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


@pytest.mark.parametrize("down_for", [1.5, 7.0], ids=["job-still-running", "job-ended-meanwhile"])
def test_a_log_follower_goes_on_where_it_was_across_a_requester_restart(
    tmp_path: Path, busybox_image: str, down_for: float
) -> None:
    """`bacalhau job logs --follow` (REST) and the gRPC client's follow, while the requester
    is SIGKILLed and started again mid-output: both go on from the line they had, and end
    with the whole output, each line once (before, both ended with "the log stream ended
    unexpectedly"). Also when the job ended while the requester was down, and the restarted
    requester does not hear its node yet: the rest comes once it does."""
    lines = 40
    script = f"for i in $(seq 1 {lines}); do echo out-$i; echo err-$i >&2; sleep 0.15; done"
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST)
    try:
        job = shell_job(busybox_image, script)
        job_id = stack.client.submit(job).job_id
        follower = subprocess.Popen(
            bacalhau_command("job", "logs", "--follow", job_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=stack.env(),
        )
        grpc_lines: list[LogLine] = []
        grpc_failure: list[BaseException] = []

        async def follow_over_grpc() -> None:
            async with AsyncGrpcClient(stack.manifest["GRPCAPIAddress"]) as client:
                async for line in client.logs(job_id, follow=True):
                    grpc_lines.append(line)

        def in_thread() -> None:
            try:
                asyncio.run(follow_over_grpc())
            except BaseException as exc:  # reported by the test's thread
                grpc_failure.append(exc)

        grpc_thread = threading.Thread(target=in_thread)
        grpc_thread.start()
        assert follower.stdout is not None
        first = [follower.stdout.readline() for _ in range(5)]
        assert first == [f"out-{i}\n" for i in range(1, 6)]
        stack.kill_node("requester")
        assert stack.wait_for_node_exit("requester").exit_code == -9
        time.sleep(down_for)  # the job prints on meanwhile (6 s in all)
        stack.restart_node("requester")
        rest, err = follower.communicate(timeout=90)
        grpc_thread.join(90)
        assert follower.returncode == 0, err
        assert "".join(first) + rest == "".join(f"out-{i}\n" for i in range(1, lines + 1))
        printed = [line for line in err.splitlines() if line.startswith("err-")]
        assert printed == [f"err-{i}" for i in range(1, lines + 1)], err
        assert f"lost contact with the API while following job {job_id}" in err, err
        assert not grpc_failure, grpc_failure
        by_stream = {
            kind: [line.text for line in grpc_lines if line.stream is kind] for kind in LogStream
        }
        assert by_stream[LogStream.STDOUT] == [f"out-{i}\n" for i in range(1, lines + 1)]
        assert by_stream[LogStream.STDERR] == [f"err-{i}\n" for i in range(1, lines + 1)]
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_compute_node_killed_mid_job_and_restarted_reports_it_and_the_job_completes(
    tmp_path: Path, busybox_image: str
) -> None:
    # One compute node: the replacement can only run on the restarted node itself. It comes
    # back long before gossip would declare it dead: the node itself reports the execution
    # interrupted (a node declared dead first has its work failed as NodeLost instead).
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=1,
        config=["gossip.suspicion_min_seconds=15", "rejoin_grace=20"],
    )
    try:
        job_id = stack.client.submit(sleeper(busybox_image, 5, "second")).job_id
        first = _kill_its_node_once_running(stack, job_id)
        # The node's watcher removes the container it could not (executor/docker/_deathwatch).
        eventually(
            lambda: not containers(f"bacalhau-executionID={first.id}"),
            timeout=10,
            what="the killed node's container removed",
        )
        stack.restart_node("compute-0")

        def replaced() -> bool:
            ex = {e.id: e for e in stack.client.get_job(job_id, executions=True).executions}
            return ex[first.id].compute_state == ExecutionStateType.FAILED and len(ex) == 2

        eventually(replaced, timeout=20, what="the interrupted execution failed and replaced")
        assert not containers(f"bacalhau-executionID={first.id}")
        state = eventually(lambda: finished(stack, job_id), timeout=25, what="the job finishing")
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        lost = next(e for e in details.executions if e.id == first.id)
        assert lost.compute_state == ExecutionStateType.FAILED
        assert lost.compute_message == RESTART_MESSAGE
        [done] = [e for e in details.executions if e.compute_state == ExecutionStateType.COMPLETED]
        assert done.id != first.id and done.node_id == first.node_id
        assert done.run_output is not None and done.run_output.stdout == "second\n"

        # Its results (a few small files: kept by the node's store in the commit of the
        # execution's end, archived when downloaded) survive another kill of the node.
        stack.kill_node("compute-0")
        assert stack.wait_for_node_exit("compute-0").exit_code == -9
        stack.restart_node("compute-0")
        results = tmp_path / "results"
        # (Gossip may still call the node connected: the download says when it serves.)
        eventually(
            lambda: stack.cli("job", "get", job_id, "--output-dir", str(results)).returncode == 0,
            timeout=20,
            what="the restarted node serving the results",
        )
        assert (results / "stdout").read_text() == "second\n"
        assert (results / "exitCode").read_text() == "0"
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_requester_stopped_gracefully_gets_its_compute_nodes_back(
    tmp_path: Path, busybox_image: str
) -> None:
    # `systemctl restart` of the requester: it leaves the cluster with SIGTERM and starts
    # again knowing nobody, while its two compute nodes stay alive to each other.
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2, config=FAST)
    try:
        stack.wait_for_node("compute-0")
        stack.wait_for_node("compute-1")
        assert stack.kill_node("requester", signal.SIGTERM)
        assert stack.wait_for_node_exit("requester").exit_code == 0
        stack.restart_node("requester")
        stack.wait_for_node("requester", timeout=20)
        # Each compute node sees its seed (the requester) as left, and rejoins it.
        stack.wait_for_node("compute-0", timeout=30)
        stack.wait_for_node("compute-1", timeout=30)
        job_id = stack.client.submit(sleeper(busybox_image, 0, "back")).job_id
        assert eventually(lambda: finished(stack, job_id), timeout=30, what="the job") == (
            JobStateType.COMPLETED
        )
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_compute_node_back_with_an_empty_store_has_its_last_placements_found_lost_soon(
    tmp_path: Path, busybox_image: str
) -> None:
    """A node restarted without its execution store (a new disk, a wiped data dir) does not
    list the execution placed on it just before: the requester leaves an execution that
    changed in the last seconds alone (its ask may be on the way), so the node reports
    again once that window has passed, and the job is moved within seconds, not at the
    next anti-entropy round a minute later."""
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=1,
        config=["gossip.suspicion_min_seconds=15", "rejoin_grace=20"],
    )
    try:
        job_id = stack.client.submit(sleeper(busybox_image, 3, "again")).job_id
        first = _kill_its_node_once_running(stack, job_id)
        store = stack.node_named("compute-0").data_dir / "compute"
        for db in store.glob("executions.db*"):
            db.unlink()
        stack.restart_node("compute-0")
        restarted = time.monotonic()

        def lost() -> bool:
            ex = {e.id: e for e in stack.client.get_job(job_id, executions=True).executions}
            return ex[first.id].compute_state == ExecutionStateType.FAILED

        eventually(lost, timeout=30, what="the execution the node forgot failed as lost")
        assert time.monotonic() - restarted < 25
        state = eventually(lambda: finished(stack, job_id), timeout=30, what="the job finishing")
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, _explain(stack, details.executions)
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()
