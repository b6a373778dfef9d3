"""Jobs survive the death of the compute node running them: a SIGKILLed node is declared
lost after its heartbeats stop, its execution is failed with a ``NodeLost`` event naming it,
and the job completes on another node."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bacalhau.errors import NodeLost
from bacalhau.models import Connection, Execution, ExecutionStateType, JobStateType
from tests.integration.devstack import FAST_GOSSIP, Devstack, bacalhau_command, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("failover")]

#: Fast failure detection for the test: silent for 2 s means lost.
FAST = FAST_GOSSIP


def running_execution(stack: Devstack, job_id: str) -> Execution | None:
    """The job's execution once its node runs it."""
    details = stack.client.get_job(job_id, executions=True)
    for ex in details.executions:
        if ex.compute_state in (ExecutionStateType.BID_ACCEPTED, ExecutionStateType.RUNNING):
            return ex
    return None


def running_sleeper(stack: Devstack, wasm_modules: Path, seconds: int) -> tuple[str, Execution]:
    """A WASM job that sleeps ``seconds``, once its execution runs: its ID and execution."""
    job_id = stack.ok(
        "wasm", "run", "--no-wait", "--id-only", str(wasm_modules / "sleeper.wasm"), str(seconds)
    ).strip()
    first = eventually(lambda: running_execution(stack, job_id), timeout=20, what="the job running")
    return job_id, first


def finished(stack: Devstack, job_id: str) -> JobStateType | None:
    """The job's state once it ended (None before, or while the requester is starting)."""
    try:
        state = stack.client.get_job(job_id).job.state
    except Exception:  # the requester may still be starting
        return None
    return state if state.is_terminal() else None


def test_job_on_a_killed_compute_node_completes_on_another(
    tmp_path: Path, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2, config=FAST)
    try:
        # A module that sleeps 4 s: long enough to be killed mid-run.
        job_id, first = running_sleeper(stack, wasm_modules, 4)
        victim = stack.node(first.node_id)
        stack.kill_node(victim.name)

        state = eventually(
            lambda: finished(stack, job_id), timeout=25, what="the job finishing elsewhere"
        )
        details = stack.client.get_job(job_id, executions=True, history=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        by_id = {ex.id: ex for ex in details.executions}
        lost = by_id[first.id]
        assert lost.compute_state == ExecutionStateType.FAILED
        [done] = [e for e in details.executions if e.compute_state == ExecutionStateType.COMPLETED]
        assert done.node_id != victim.node_id
        events = [h.event for h in details.history if h.execution_id == first.id]
        [node_lost] = [e for e in events if e.details.get("ErrorCode") == NodeLost.code]
        assert victim.node_id in node_lost.message and "silent for" in node_lost.message
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_flapping_node_does_not_run_a_replaced_execution_to_completion(
    tmp_path: Path, wasm_modules: Path
) -> None:
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=2,
        config=FAST_GOSSIP,
    )
    try:
        job_id, first = running_sleeper(stack, wasm_modules, 8)
        victim = stack.node(first.node_id)
        # Frozen (the module with it) long enough to be declared lost, then alive again.
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            stack.wait_for_node(victim.name, connection=Connection.DISCONNECTED, timeout=10)
            eventually(
                lambda: len(stack.client.get_job(job_id, executions=True).executions) == 2,
                timeout=10,
                what="a replacement placed",
            )
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        resumed = time.monotonic()
        # Back, it refutes its death; the execution that was replaced is cancelled on it (by
        # the cancel sent when it was failed, or when the node reports still holding it).
        stack.wait_for_node(victim.name, timeout=15)

        state = eventually(lambda: finished(stack, job_id), timeout=25, what="the job finishing")
        details = stack.client.get_job(job_id, executions=True, history=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        states = {ex.id: ex.compute_state for ex in details.executions}
        assert states[first.id] == ExecutionStateType.FAILED
        assert list(states.values()).count(ExecutionStateType.COMPLETED) == 1
        completions = [h for h in details.history if h.job_state_new == JobStateType.COMPLETED]
        assert len(completions) == 1
        # Had the old execution run on, it would have reported within 8 s of the resume (a
        # late report the history would show).
        time.sleep(max(0.0, resumed + 9 - time.monotonic()))
        history = stack.client.get_job(job_id, history=True).history
        assert not [h for h in history if h.event.details.get("LateReport")], history
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_following_a_job_goes_on_with_the_retry_when_its_node_is_killed(
    tmp_path: Path, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2, config=FAST)
    try:
        job_id, first = running_sleeper(stack, wasm_modules, 10)
        follower = subprocess.Popen(
            bacalhau_command("job", "logs", "--follow", job_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=stack.env(),
        )
        assert follower.stdout is not None
        lines: list[str] = []
        first_line = threading.Event()

        def read() -> None:
            assert follower.stdout is not None
            for line in follower.stdout:
                lines.append(line)
                first_line.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # The follower is streaming the first execution when its node dies.
        assert first_line.wait(15), "no line from the first execution"
        stack.kill_node(stack.node(first.node_id).name)
        try:
            follower.wait(timeout=40)
        finally:
            follower.kill()
        reader.join(5)
        assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
        # The first attempt's line, then the whole retry's output, and the follower ended
        # with the job.
        details = stack.client.get_job(job_id, executions=True)
        states = {ex.id: ex.compute_state for ex in details.executions}
        # (10 s of sleep leave time to kill the node mid-run even on a loaded machine.)
        assert states[first.id] == ExecutionStateType.FAILED, states
        assert lines == ["sleeping 10\n", "sleeping 10\n", "woke up\n"], lines
        assert details.job.state == JobStateType.COMPLETED
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_job_whose_only_node_is_lost_for_a_moment_waits_for_it(
    tmp_path: Path, wasm_modules: Path
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST)
    try:
        job_id, first = running_sleeper(stack, wasm_modules, 3)
        [node] = stack.compute
        # Frozen long enough to be declared lost (as a loaded machine or a restart may do),
        # then back: with no other node, the job waits for it instead of failing.
        os.kill(node.pid, signal.SIGSTOP)
        try:
            stack.wait_for_node(node.name, connection=Connection.DISCONNECTED, timeout=10)
            eventually(
                lambda: (
                    stack.client.get_job(job_id, executions=True).executions[0].compute_state
                    == ExecutionStateType.FAILED
                ),
                timeout=10,
                what="the lost node's execution failed",
            )
            assert stack.client.get_job(job_id).job.state == JobStateType.QUEUED
        finally:
            os.kill(node.pid, signal.SIGCONT)

        state = eventually(lambda: finished(stack, job_id), timeout=30, what="the job finishing")
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        # Back, the node either finished the first run (its sleep ended while it was
        # frozen) and that late result is kept, or it was told to cancel it first and the
        # replacement ran: either way one run completed, on that node.
        completed = [
            ex for ex in details.executions if ex.compute_state == ExecutionStateType.COMPLETED
        ]
        assert len(completed) == 1, details.executions
        if completed[0].id == first.id:
            history = stack.client.get_job(job_id, history=True).history
            assert [h for h in history if h.event.details.get("LateResultKept")], history
        else:
            states = {ex.id: ex.compute_state for ex in details.executions}
            assert states[first.id] == ExecutionStateType.FAILED, states
        assert {ex.node_id for ex in details.executions} == {node.node_id}
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_jobs_submitted_while_their_nodes_die_wait_for_them_to_come_back(
    tmp_path: Path, wasm_modules: Path
) -> None:
    """Every compute node killed, jobs submitted before gossip says so: their asks fail to
    connect, which is no attempt at the jobs. They wait, and run once the nodes restart."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2)
    try:
        for node in stack.compute:
            stack.kill_node(node.name)
        module = str(wasm_modules / "hello.wasm")
        job_ids = [
            stack.ok("wasm", "run", "--no-wait", "--id-only", module).strip() for _ in range(3)
        ]
        time.sleep(4)  # the asks have failed by now, several times each
        for job_id in job_ids:
            job = stack.client.get_job(job_id).job
            assert not job.state.is_terminal(), f"{job_id}: {job.state_message}"
        for node in stack.compute:
            stack.restart_node(node.name)

        def done() -> bool:
            states = [stack.client.get_job(j).job.state for j in job_ids]
            return all(s.is_terminal() for s in states)

        eventually(done, timeout=60, what="the jobs ending once their nodes are back")
        for job_id in job_ids:
            details = stack.client.get_job(job_id, executions=True)
            assert details.job.state == JobStateType.COMPLETED, details.job.state_message
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_lost_partition_moves_to_a_node_that_finished_its_own(
    tmp_path: Path, wasm_modules: Path
) -> None:
    """Count 3 on 3 nodes, one killed mid-run: the other two have done their partitions
    and one of them takes the lost one, rather than the job failing for want of nodes."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=3, config=FAST)
    try:
        job_id = stack.ok(
            "wasm", "run", "--no-wait", "--id-only", "--count", "3",
            str(wasm_modules / "sleeper.wasm"), "3",
        ).strip()  # fmt: skip

        def all_running() -> list[Execution] | None:
            details = stack.client.get_job(job_id, executions=True)
            live = [e for e in details.executions if e.is_active()]
            return live if len(live) == 3 else None

        first = eventually(all_running, timeout=20, what="three partitions running")
        victim = stack.node(first[0].node_id)
        stack.kill_node(victim.name)

        try:
            state = eventually(lambda: finished(stack, job_id), timeout=40, what="the job ending")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{stack.story(job_id)}") from None
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, stack.story(job_id)
        done = [e for e in details.executions if e.compute_state == ExecutionStateType.COMPLETED]
        assert sorted(e.partition_index for e in done) == [0, 1, 2]
        moved = next(e for e in done if e.partition_index == first[0].partition_index)
        assert moved.node_id != victim.node_id
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_a_node_stalled_for_a_moment_keeps_its_work(tmp_path: Path, wasm_modules: Path) -> None:
    """SIGSTOP for 3 s: gossip declares the node dead, but it is back within the grace
    (`lost_execution_grace`, 5 s), so its execution is not failed and run again."""
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2, config=FAST)
    try:
        job_id, first = running_sleeper(stack, wasm_modules, 6)
        victim = stack.node(first.node_id)
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            time.sleep(3)
        finally:
            os.kill(victim.pid, signal.SIGCONT)

        state = eventually(lambda: finished(stack, job_id), timeout=30, what="the job ending")
        details = stack.client.get_job(job_id, executions=True)
        assert state == JobStateType.COMPLETED, details.job.state_message
        assert [(e.id, e.compute_state) for e in details.executions] == [
            (first.id, ExecutionStateType.COMPLETED)
        ]
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()
