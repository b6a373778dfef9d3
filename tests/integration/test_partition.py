"""A compute node cut off by a network partition is declared lost, its job completes on
another node, and once the link returns it is seen alive again, runs nothing stale, and the
job has completed exactly once.

Every node is a real ``bacalhau serve`` process in its own network namespace
(``netns.py``): the requester in ``a``, compute nodes in ``b`` and ``c``, each bound to its
namespace's address with a certificate for it from ``bacalhau ca issue --host``. The test
talks to the requester only through the ``bacalhau`` CLI, run in the network's hub namespace.
Jobs are WASM sleepers, so no container networking is involved. The partition takes the
link of whichever compute node the job landed on down; the other one stays up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bacalhau.errors import NodeLost
from bacalhau.models import Execution, ExecutionStateType, JobStateType
from tests.integration.devstack import eventually, node_env
from tests.integration.netns import HUB, PrivateNetwork, root_skip_reason

pytestmark = [pytest.mark.integration]

#: Membership and liveness settings for every node: the one place to change when the
#: liveness protocol changes (today heartbeats to the requester; gossip settings later).
#: Silent for 2 s means lost; the two sides of a healed link find each other within a second.
LIVENESS = ["disconnect_timeout=2", "heartbeat_interval=0.3", "gossip_reconnect_interval=1"]
#: How long the cluster may take to declare the cut node lost, and to see it back.
DETECTION_TIMEOUT = 15.0
REJOIN_TIMEOUT = 20.0
#: How long the job sleeps: long enough to be cut off mid-run.
JOB_SECONDS = 3
#: The sleeper whose result is kept: it outlasts the requester's detection of the cut and
#: its grace before failing the execution (about 6 s), so the link heals after both, while
#: the replacement has as long to go as that took.
KEPT_JOB_SECONDS = 8

GRPC_PORT = 4222
API_PORT = 1234
PUBLISHER_PORT = 6001
READY_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0


@dataclass
class ServeProcess:
    """One ``bacalhau serve`` in its namespace."""

    host: str
    node_id: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class PartitionCluster:
    """A requester and compute nodes on a :class:`PrivateNetwork`, driven by the CLI."""

    def __init__(self, net: PrivateNetwork, root: Path) -> None:
        self.net = net
        self.root = root
        self.ca_dir = root / "ca"
        self.nodes: dict[str, ServeProcess] = {}
        self.bacalhau_ok("ca", "init", "--ca-dir", str(self.ca_dir), where=None)

    # -- the CLI --------------------------------------------------------------------------

    def bacalhau(self, *args: str, where: str | None = HUB) -> subprocess.CompletedProcess[str]:
        """``bacalhau ARGS...`` against the requester, run in the hub namespace (or, with
        ``where=None``, in the machine's own, for commands that need no network)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
        env.update(BACALHAU_API_HOST=self.net.address("a"), BACALHAU_API_PORT=str(API_PORT))
        argv = [sys.executable, "-m", "bacalhau", *args]
        if where is None:
            return subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT, check=False
            )
        return self.net.run(where, argv, env=env, timeout=CLI_TIMEOUT)

    def bacalhau_ok(self, *args: str, where: str | None = HUB) -> str:
        done = self.bacalhau(*args, where=where)
        assert done.returncode == 0, (
            f"bacalhau {' '.join(args)} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.bacalhau_ok(*args, "--output", "json"))

    # -- nodes ----------------------------------------------------------------------------

    def serve(self, host: str, *args: str) -> ServeProcess:
        """Start ``bacalhau serve ARGS...`` in ``host``'s namespace, with its own identity and
        a certificate for its address, bound to that address."""
        data_dir = self.root / host
        address = self.net.address(host)
        issued = self.bacalhau_ok(
            "ca",
            "issue",
            "--ca-dir",
            str(self.ca_dir),
            "--data-dir",
            str(data_dir),
            "--host",
            address,
            where=None,
        )
        node_id = issued.split("Node ID:", 1)[1].split()[0]
        settings = [part for item in LIVENESS for part in ("-c", item)]
        log = self.root / f"{host}.log"
        with log.open("wb") as out:
            process = self.net.popen(
                host,
                [
                    sys.executable,
                    "-m",
                    "bacalhau",
                    "serve",
                    "--data-dir",
                    str(data_dir),
                    "--grpc-host",
                    address,
                    "--grpc-port",
                    str(GRPC_PORT),
                    "-c",
                    f"advertise_host={address}",
                    *settings,
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=node_env(),
            )
        node = ServeProcess(host, node_id, log, process)
        self.nodes[host] = node
        return node

    def start(self) -> None:
        """The requester in ``a`` (REST API on every address of ``a``), compute nodes in
        ``b`` and ``c``; returns once both compute nodes are connected."""
        self.serve("a", "--orchestrator", "--api-host", "0.0.0.0", "--api-port", str(API_PORT))
        orchestrator = f"{self.net.address('a')}:{GRPC_PORT}"
        for host in ("b", "c"):
            self.serve(
                host,
                "--compute",
                "--orchestrator-address",
                orchestrator,
                "--engines",
                "wasm",
                "--publisher-host",
                self.net.address(host),
                "--publisher-port",
                str(PUBLISHER_PORT),
            )
        for host in ("b", "c"):
            self.wait_for_connection(host, "CONNECTED", timeout=READY_TIMEOUT)

    def node_states(self) -> dict[str, dict[str, Any]]:
        """``bacalhau node list``, by node ID; empty while the requester does not answer."""
        done = self.bacalhau("node", "list", "--output", "json")
        if done.returncode != 0:
            return {}
        return {n["Info"]["NodeID"]: n for n in json.loads(done.stdout)}

    def wait_for_connection(self, host: str, connection: str, *, timeout: float) -> dict[str, Any]:
        node = self.nodes[host]

        def seen() -> dict[str, Any] | None:
            for process in self.nodes.values():
                assert process.process.poll() is None, (
                    f"node {process.host} exited with {process.process.returncode}:\n"
                    f"{process.output()[-3000:]}"
                )
            state = self.node_states().get(node.node_id)
            if state is None or state["Connection"] != connection:
                return None
            # Where Bacalhau v1.6+ clients read it.
            assert state["ConnectionState"]["Status"] == connection, state
            return state

        return eventually(seen, timeout=timeout, what=f"node {host} {connection}")

    def host_of(self, node_id: str) -> str:
        return next(h for h, n in self.nodes.items() if n.node_id == node_id)

    # -- jobs -----------------------------------------------------------------------------

    def describe(self, job_id: str) -> dict[str, Any]:
        described = self.json("job", "describe", job_id)
        assert isinstance(described, dict)
        return described

    def job_state(self, job_id: str) -> JobStateType:
        return JobStateType.parse(self.describe(job_id)["Job"]["State"]["StateType"])

    def executions(self, job_id: str) -> list[Execution]:
        """``bacalhau job executions``, read back into executions."""
        return [Execution.from_dict(e) for e in self.json("job", "executions", job_id)]

    def history(self, job_id: str) -> list[dict[str, Any]]:
        found = self.json("job", "history", job_id)
        assert isinstance(found, list)
        return found

    def stop(self) -> list[str]:
        """SIGTERM every node (compute first); returns those that did not stop cleanly."""
        unclean = []
        for host in ("b", "c", "a"):
            node = self.nodes.get(host)
            if node is None:
                continue
            if node.process.poll() is None:
                node.process.terminate()
            try:
                code = node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                code = node.process.wait()
            if code != 0:
                unclean.append(f"{host} exited with {code}:\n{node.output()[-2000:]}")
        return unclean


@pytest.fixture
def cluster(tmp_path: Path, wasm_modules: Path) -> Iterator[PartitionCluster]:
    """A requester and two compute nodes, each in its own namespace; skipped only when not
    root, failing when namespaces do not work."""
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    with PrivateNetwork(["a", "b", "c"]) as net:
        stack = PartitionCluster(net, tmp_path)
        try:
            stack.start()
            yield stack
        except BaseException:
            stack.stop()
            raise
        unclean = stack.stop()
        # Shown by pytest only when the test failed: what each node said.
        for node in stack.nodes.values():
            print(f"--- {node.host} ({node.node_id}) ---\n{node.output()[-4000:]}")
        assert not unclean, "\n".join(unclean)


def test_a_partitioned_compute_node_is_declared_lost_its_job_moves_and_it_rejoins(
    cluster: PartitionCluster, wasm_modules: Path
) -> None:
    job_id, first = run_sleeper(cluster, wasm_modules, JOB_SECONDS)
    victim = cluster.host_of(first.node_id)
    survivor = "c" if victim == "b" else "b"

    cluster.net.cut(victim)
    cluster.wait_for_connection(victim, "DISCONNECTED", timeout=DETECTION_TIMEOUT)
    assert cluster.nodes[victim].process.poll() is None, "the cut node is meant to live on"

    def finished() -> JobStateType | None:
        state = cluster.job_state(job_id)
        return state if state.is_terminal() else None

    state = eventually(finished, timeout=DETECTION_TIMEOUT + 4 * JOB_SECONDS, what="job done")
    assert state == JobStateType.COMPLETED, cluster.describe(job_id)["Job"]["State"]
    executions = {e.id: e for e in cluster.executions(job_id)}
    assert executions[first.id].compute_state == ExecutionStateType.FAILED
    [done] = [e for e in executions.values() if e.compute_state == ExecutionStateType.COMPLETED]
    assert done.node_id == cluster.nodes[survivor].node_id

    events = [h["Event"] for h in cluster.history(job_id) if h.get("ExecutionID") == first.id]
    [lost] = [e for e in events if e.get("Details", {}).get("ErrorCode") == NodeLost.code]
    assert first.node_id in lost["Message"], lost

    cluster.net.heal(victim)
    cluster.wait_for_connection(victim, "CONNECTED", timeout=REJOIN_TIMEOUT)
    assert cluster.nodes[victim].process.poll() is None
    # The node ran its execution to the end while cut off; back, it reports it, and the
    # requester keeps the replacement's result, not this one.
    eventually(
        lambda: late_reports(cluster.history(job_id), first.id),
        timeout=REJOIN_TIMEOUT,
        what="the cut node's late result arriving and being ignored",
    )

    def idle() -> dict[str, Any] | None:
        info = cluster.node_states()[first.node_id]["Info"]["ComputeNodeInfo"]
        busy = info["RunningExecutions"] or info["EnqueuedExecutions"]
        free = info["AvailableCapacity"] == info["MaxCapacity"]
        return info if not busy and free else None

    eventually(idle, timeout=REJOIN_TIMEOUT, what=f"node {victim} back with nothing running")

    assert cluster.job_state(job_id) == JobStateType.COMPLETED
    states = {e.id: e.compute_state for e in cluster.executions(job_id)}
    assert states[first.id] == ExecutionStateType.FAILED, states
    assert list(states.values()).count(ExecutionStateType.COMPLETED) == 1, states
    completions = [
        h
        for h in cluster.history(job_id)
        if h.get("Type") == "JobLevel" and h.get("JobState", {}).get("New") == "Completed"
    ]
    assert len(completions) == 1, completions


def test_a_result_finished_while_cut_off_is_kept_if_the_node_returns_before_the_replacement(
    cluster: PartitionCluster, wasm_modules: Path
) -> None:
    job_id, first = run_sleeper(cluster, wasm_modules, KEPT_JOB_SECONDS)
    seen_running = time.monotonic()
    victim = cluster.host_of(first.node_id)
    cluster.net.cut(victim)

    def failed_as_lost() -> Execution | None:
        ex = next(e for e in cluster.executions(job_id) if e.id == first.id)
        return ex if ex.compute_state == ExecutionStateType.FAILED else None

    eventually(failed_as_lost, timeout=DETECTION_TIMEOUT, what="the cut node's run failed")
    replacement = eventually(
        lambda: next((e for e in cluster.executions(job_id) if e.id != first.id), None),
        timeout=10,
        what="a replacement",
    )
    # The cut node's run started before it was seen running: it is over by now, and its
    # result waits in the node's outbox. The replacement has several seconds to go.
    time.sleep(max(0.0, seen_running + KEPT_JOB_SECONDS + 0.5 - time.monotonic()))
    cluster.net.heal(victim)

    def finished() -> JobStateType | None:
        state = cluster.job_state(job_id)
        return state if state.is_terminal() else None

    assert eventually(finished, timeout=REJOIN_TIMEOUT, what="job done") == JobStateType.COMPLETED
    states = {e.id: e.compute_state for e in cluster.executions(job_id)}
    assert states[first.id] == ExecutionStateType.COMPLETED, cluster.history(job_id)
    assert states[replacement.id] == ExecutionStateType.CANCELLED, states
    kept = [
        h["Event"]
        for h in cluster.history(job_id)
        if h.get("ExecutionID") == first.id
        and h["Event"].get("Details", {}).get("LateResultKept") == "true"
    ]
    assert len(kept) == 1 and "its result is kept" in kept[0]["Message"], kept


def run_sleeper(
    cluster: PartitionCluster, wasm_modules: Path, seconds: int
) -> tuple[str, Execution]:
    """Submit a WASM job sleeping ``seconds``; returns its ID and execution once running."""
    job_id = cluster.bacalhau_ok(
        "wasm",
        "run",
        "--no-wait",
        "--id-only",
        str(wasm_modules / "sleeper.wasm"),
        str(seconds),
    ).strip()

    def running() -> Execution | None:
        executing = [e for e in cluster.executions(job_id) if e.compute_state.is_executing()]
        return executing[0] if executing else None

    return job_id, eventually(running, timeout=20, what="the job running")


def late_reports(history: list[dict[str, Any]], execution_id: str) -> list[dict[str, Any]]:
    """History events of results that ``execution_id`` reported after it was replaced."""
    return [
        h["Event"]
        for h in history
        if h.get("ExecutionID") == execution_id
        and h["Event"].get("Details", {}).get("LateReport") == "true"
    ]
