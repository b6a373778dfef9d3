"""Manual node approval and trusted requesters, end to end with real ``bacalhau serve``
processes and the real ``bacalhau`` command.

A requester started with ``--manual-approval`` admits a compute node as PENDING and asks it
nothing: a job waits QUEUED. ``bacalhau node approve`` makes the queued job run there;
``bacalhau node reject`` stops new placements; ``bacalhau node delete`` forgets the node,
whose decision is forgotten: PENDING again. Decisions survive a requester restart. The compute
node, started with ``--trusted-requester``, obeys the requester at its seed address and the
one listed, and no other cluster member.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bacalhau.errors import NotFound, PermissionDenied
from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import BidDecision
from bacalhau.transport import ComputeClient
from tests.integration.devstack import NodeProcess, eventually, run_bacalhau, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("node-approval")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    ca: ClusterCA
    requester: NodeProcess
    compute: NodeProcess
    compute_id: str
    listed_dir: Path  # a trusted requester named on the compute node's command line
    api_port: int
    requester_args: list[str]

    def restart_requester(self) -> None:
        """SIGKILL the requester and start it again with the same command line."""
        self.requester.process.kill()
        self.requester.process.wait(30)
        self.requester = NodeProcess(self.requester.data_dir, self.requester_args)
        eventually(lambda: "API: http" in self.requester.output(), timeout=60, what="the API")

    def member(self, directory: Path) -> NodeFiles:
        """A genuine cluster certificate for a node that joins nothing."""
        identity = NodeIdentity.load_or_create(directory)
        return self.ca.issue_node_certificate(
            identity, data_dir=directory, hosts=["127.0.0.1", "localhost"]
        )

    def cli(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
        env.update(BACALHAU_API_HOST="127.0.0.1", BACALHAU_API_PORT=str(self.api_port))
        done = run_bacalhau(args, env=env)
        assert done.returncode == 0, f"bacalhau {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def membership(self) -> str | None:
        nodes = json.loads(self.cli("node", "list", "--output", "json"))
        found = [n["Membership"] for n in nodes if n["Info"]["NodeID"] == self.compute_id]
        return found[0] if found else None

    def job_state(self, job_id: str) -> str:
        described = json.loads(self.cli("job", "describe", job_id, "--output", "json"))
        return str(described["Job"]["State"]["StateType"])

    def executions_on_compute(self) -> int:
        db = self.compute.data_dir / "compute" / "executions.db"
        if not db.exists():
            return 0
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0
        finally:
            conn.close()

    def submit(self, image: str, word: str) -> str:
        out = self.cli(
            "docker", "run", "--no-wait", "--queue-timeout", "120", image, "--", "echo", word
        )
        return submitted_job_id(out)


@pytest.fixture
def cluster(tmp_path: Path, busybox_image: str) -> Iterator[Cluster]:
    ca = ClusterCA.create(tmp_path / "ca")
    dirs = {name: tmp_path / name for name in ("requester", "compute", "listed")}
    ids = {}
    for name, directory in dirs.items():
        identity = NodeIdentity.load_or_create(directory)
        ca.issue_node_certificate(identity, data_dir=directory, hosts=["127.0.0.1", "localhost"])
        ids[name] = identity.node_id
    grpc_port, api_port = _free_port(), _free_port()
    requester_args = [
        "--orchestrator",
        "--manual-approval",
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--api-host",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        # Not the default gRPC API port: another test's node may hold it.
        "--api-grpc-port",
        "0",
        "-c",
        "gossip.probe_interval=0.25",
    ]
    requester = NodeProcess(dirs["requester"], requester_args)
    compute = NodeProcess.compute(
        dirs["compute"],
        f"127.0.0.1:{grpc_port}",
        "--engines",
        "docker",
        "--trusted-requester",
        ids["listed"],
    )
    stack = Cluster(
        ca, requester, compute, ids["compute"], dirs["listed"], api_port, requester_args
    )
    try:
        eventually(lambda: "API: http" in requester.output(), timeout=60, what="the API")
        eventually(lambda: stack.membership() is not None, timeout=60, what="the join")
        yield stack
    finally:
        # The test may have replaced the requester process (a restart): stop the current one.
        codes = (compute.stop(), stack.requester.stop())
    assert codes == (0, 0), compute.output() + stack.requester.output()


def test_manual_approval_from_pending_to_approved_rejected_and_deleted(
    cluster: Cluster, busybox_image: str
) -> None:
    assert cluster.membership() == "PENDING"
    pending = json.loads(
        cluster.cli("node", "list", "--filter-approval", "pending", "--output", "json")
    )
    assert [n["Info"]["NodeID"] for n in pending] == [cluster.compute_id]

    # A PENDING node is never asked: the job waits in the queue, the node has no execution.
    first = cluster.submit(busybox_image, "first")
    eventually(lambda: cluster.job_state(first) == "Queued", timeout=30, what="the job queueing")
    assert cluster.executions_on_compute() == 0

    # Approving it (by ID prefix, as `node list` shows it) runs the queued job there.
    out = cluster.cli("node", "approve", cluster.compute_id[:12], "-m", "checked")
    assert "approve done" in out
    assert cluster.membership() == "APPROVED"
    eventually(
        lambda: cluster.job_state(first) == "Completed", timeout=60, what="the queued job running"
    )
    described = json.loads(cluster.cli("job", "describe", first, "--output", "json"))
    [execution] = described["Executions"]["Items"]
    assert (execution["NodeID"], execution["RunOutput"]["Stdout"]) == (
        cluster.compute_id,
        "first\n",
    )

    # Rejecting it stops new placements.
    cluster.cli("node", "reject", cluster.compute_id)
    assert cluster.membership() == "REJECTED"
    second = cluster.submit(busybox_image, "second")
    eventually(lambda: cluster.job_state(second) == "Queued", timeout=30, what="the job queueing")
    assert cluster.executions_on_compute() == 1

    # Deleting it forgets the decision: PENDING once more.
    cluster.cli("node", "delete", cluster.compute_id)
    eventually(lambda: cluster.membership() == "PENDING", timeout=30, what="the node pending")
    assert cluster.executions_on_compute() == 1
    cluster.cli("node", "approve", cluster.compute_id)
    eventually(lambda: cluster.job_state(second) == "Completed", timeout=60, what="the second job")


async def _reject_bid_as(files: NodeFiles, compute_id: str, address: str) -> None:
    async with ComputeClient(NodeIdentity.load(files.data_dir), files, timeout=5) as client:
        client.register_node(compute_id, address)
        await client.bid_rejected(compute_id, BidDecision("e-unknown", accepted=False))


def test_trusted_requester_flag(cluster: Cluster, tmp_path: Path) -> None:
    # The node prints its addresses once it is serving, which may come after its join.
    eventually(
        lambda: "bprotocol: " in cluster.compute.output(), timeout=30, what="the node's addresses"
    )
    address = cluster.compute.output().split("bprotocol: ")[1].split()[0]
    # The listed requester gets past the trust check (the execution is simply unknown)...
    listed = NodeFiles.in_dir(cluster.listed_dir)
    with pytest.raises(NotFound):
        asyncio.run(_reject_bid_as(listed, cluster.compute_id, address))
    # ...another cluster member does not.
    stranger = cluster.member(tmp_path / "stranger")
    with pytest.raises(PermissionDenied):
        asyncio.run(_reject_bid_as(stranger, cluster.compute_id, address))


def test_decisions_survive_a_requester_restart(cluster: Cluster) -> None:
    cluster.cli("node", "reject", cluster.compute_id, "-m", "not this one")
    assert cluster.membership() == "REJECTED"
    cluster.restart_requester()
    # The restarted requester hears of the compute node again by gossip: still rejected.
    eventually(lambda: cluster.membership() is not None, timeout=60, what="the node heard of again")
    assert cluster.membership() == "REJECTED"
    cluster.cli("node", "approve", cluster.compute_id)
    cluster.restart_requester()
    eventually(lambda: cluster.membership() is not None, timeout=60, what="the node heard of again")
    assert cluster.membership() == "APPROVED"
