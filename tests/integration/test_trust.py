"""The negative trust cases at cluster level, against a real devstack's node processes.

- A compute node process certified by another CA never joins: it is not in the node list,
  and its log says identifying its seed failed. With a CA bundle that also trusts the
  cluster's CA, only the requester's own check can keep it out, and its log shows the
  refused handshake.
- Messages signed by a key that is not the sender's (a stranger's, or another member's) are
  refused with PermissionDenied and change nothing: a forged "completed" for a running
  execution leaves it running.
- A node from another CA cannot cancel an execution, and neither can a cluster member that
  is not the requester the execution belongs to.
- Only a requester the compute node trusts may command it: another real requester process of
  the same cluster (not at the compute node's seed address) and a cluster-certificate holder
  that joined nothing are refused on AskForBid, BidAccepted, BidRejected and
  CancelExecution, and the compute node runs and cancels nothing for them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bacalhau.errors import NotFound, PermissionDenied, Unavailable
from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    Connection,
    Execution,
    ExecutionReport,
    ExecutionStateType,
    JobStateType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.transport import ComputeClient, OrchestratorClient
from tests.compute.jobs import make_execution
from tests.integration.devstack import Devstack, NodeProcess, containers, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-checks")]

JOIN_FAILED = "identifying the node at seed"


def foreign_node(tmp_path: Path, devstack: Devstack, *, trusts_cluster_ca: bool) -> NodeFiles:
    """A node identity with a certificate from a CA the cluster has never seen. With
    ``trusts_cluster_ca`` its CA file is a bundle (its own CA first, then the cluster's), so
    it accepts the cluster's nodes and only their checks can refuse it."""
    foreign_ca = ClusterCA.create(tmp_path / "foreign-ca")
    node_dir = tmp_path / "intruder"
    identity = NodeIdentity.load_or_create(node_dir)
    files = foreign_ca.issue_node_certificate(
        identity, data_dir=node_dir, hosts=["127.0.0.1", "localhost"]
    )
    if trusts_cluster_ca:
        cluster_ca = (devstack.ca_dir / "ca.crt").read_bytes()
        files.ca_cert.write_bytes(foreign_ca.certificate_pem + cluster_ca)
    return files


@pytest.mark.parametrize("trusts_cluster_ca", [False, True], ids=["own-ca", "ca-bundle"])
def test_node_certified_by_another_ca_never_joins(
    devstack: Devstack, tmp_path: Path, trusts_cluster_ca: bool
) -> None:
    files = foreign_node(tmp_path, devstack, trusts_cluster_ca=trusts_cluster_ca)
    intruder_id = NodeIdentity.load(files.data_dir).node_id
    requester_log = devstack.requester.log
    log_start = requester_log.stat().st_size
    node = NodeProcess.compute(files.data_dir, devstack.requester.grpc_address)
    try:
        # It keeps retrying with back-off; two refusals show it really tried and failed.
        eventually(
            lambda: node.output().count(JOIN_FAILED) >= 2,
            timeout=20,
            what="two refused join attempts",
        )
        assert node.process.poll() is None, "the node should keep running and retrying"
        listed = json.loads(devstack.ok("node", "list", "--output", "json"))
        assert intruder_id not in {n["Info"]["NodeID"] for n in listed}
        assert intruder_id not in {n.info.node_id for n in devstack.client.list_nodes()}
        if trusts_cluster_ca:
            with requester_log.open("rb") as log:
                log.seek(log_start)
                refused = log.read().decode(errors="replace")
            # The requester refused the handshake; the intruder had nothing against it.
            assert "Handshake failed" in refused and "CERTIFICATE_VERIFY_FAILED" in refused
            assert "CERTIFICATE_VERIFY_FAILED" not in node.output()
        else:
            # The intruder itself cannot verify the requester: it says so.
            assert "CERTIFICATE_VERIFY_FAILED" in node.output()
    finally:
        code = node.stop()
    assert code == 0, node.output()
    assert intruder_id not in {n.info.node_id for n in devstack.client.list_nodes()}


def _running_execution(devstack: Devstack, job_id: str) -> Execution | None:
    details = devstack.client.get_job(job_id, executions=True)
    if details.job.state != JobStateType.RUNNING or not details.executions:
        return None
    [execution] = details.executions
    return execution if containers(f"bacalhau-executionID={execution.id}") else None


async def _forge_results(devstack: Devstack, execution: Execution) -> None:
    target = devstack.node(execution.node_id)
    other = next(n for n in devstack.compute if n.node_id != target.node_id)
    # The target's real certificate and TLS key: the connection is genuinely the target's.
    target_files = NodeFiles.in_dir(target.data_dir)
    requester = devstack.requester
    forged = RunResult(
        execution_id=execution.id,
        job_id=execution.job_id,
        node_id=target.node_id,
        published_result=SpecConfig(type="noop"),
        run_output=RunCommandResult(stdout="forged\n"),
    )
    # Signed by a stranger's key, then by another member's real key.
    for signer in (NodeIdentity.generate(), NodeIdentity.load(other.data_dir)):
        async with OrchestratorClient(
            signer, target_files, requester.grpc_address, requester.node_id, timeout=5
        ) as client:
            with pytest.raises(PermissionDenied):
                await client.on_run_complete(forged)
            with pytest.raises(PermissionDenied):
                await client.report_executions(ExecutionReport(node_id=target.node_id))
            bid = BidResult(
                execution_id=execution.id,
                job_id=execution.job_id,
                node_id=signer.node_id,
                accepted=True,
            )
            with pytest.raises(PermissionDenied, match="arrived from node"):
                await client.on_bid_complete(bid)

    # A genuine member, over its own connection with its own key, may not report on an
    # execution that another node runs.
    async with OrchestratorClient(
        NodeIdentity.load(other.data_dir),
        NodeFiles.in_dir(other.data_dir),
        requester.grpc_address,
        requester.node_id,
        timeout=5,
    ) as client:
        with pytest.raises(PermissionDenied, match="reported on execution"):
            await client.on_run_complete(replace(forged, node_id=other.node_id))

    # Control: the target's own key over its own connection passes every trust check and
    # reaches the orchestrator, which answers about the (unknown) execution itself.
    async with OrchestratorClient(
        NodeIdentity.load(target.data_dir),
        target_files,
        requester.grpc_address,
        requester.node_id,
        timeout=5,
    ) as client:
        unknown = BidResult(
            execution_id=f"e-{uuid.uuid4()}",
            job_id=execution.job_id,
            node_id=target.node_id,
            accepted=True,
        )
        with pytest.raises(NotFound):
            await client.on_bid_complete(unknown)


async def _cancel_as(
    files: NodeFiles, identity: NodeIdentity, node_id: str, address: str, execution_id: str
) -> None:
    async with ComputeClient(identity, files, timeout=5) as client:
        client.register_node(node_id, address)
        await client.cancel_execution(node_id, CancelExecutionRequest(execution_id, "forged"))


def test_forged_messages_are_refused_and_change_nothing(
    devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    job_id = devstack.ok(
        "docker", "run", "--no-wait", "--id-only", busybox_image, "--", "sleep", "60"
    ).strip()
    try:
        execution = eventually(
            lambda: _running_execution(devstack, job_id), timeout=30, what="the job running"
        )
        target = devstack.node(execution.node_id)

        asyncio.run(_forge_results(devstack, execution))

        # A certificate from another CA (trusting ours) cannot reach the compute node at all.
        intruder = foreign_node(tmp_path, devstack, trusts_cluster_ca=True)
        with pytest.raises(Unavailable):
            asyncio.run(
                _cancel_as(
                    intruder,
                    NodeIdentity.load(intruder.data_dir),
                    target.node_id,
                    target.grpc_address,
                    execution.id,
                )
            )
        # A genuine member that is not the execution's requester may not cancel it either.
        other = next(n for n in devstack.compute if n.node_id != target.node_id)
        with pytest.raises(PermissionDenied):
            asyncio.run(
                _cancel_as(
                    NodeFiles.in_dir(other.data_dir),
                    NodeIdentity.load(other.data_dir),
                    target.node_id,
                    target.grpc_address,
                    execution.id,
                )
            )

        # None of it landed: the job still runs in its container, with no forged output.
        still = _running_execution(devstack, job_id)
        assert still is not None and still.id == execution.id
        assert still.compute_state not in (
            ExecutionStateType.COMPLETED,
            ExecutionStateType.CANCELLED,
        )
        assert still.run_output is None or still.run_output.stdout != "forged\n"
        nodes = {n.info.node_id: n for n in devstack.client.list_nodes()}
        assert nodes[target.node_id].connection == Connection.CONNECTED
    finally:
        devstack.client.stop_job(job_id, "test finished")
    eventually(
        lambda: devstack.client.get_job(job_id).job.state == JobStateType.STOPPED,
        timeout=10,
        what="the job stopping",
    )


# -- only a trusted requester may command a compute node -----------------------------------------


def cluster_member(devstack: Devstack, directory: Path) -> NodeFiles:
    """An identity with a genuine certificate from the cluster's CA that joined nothing."""
    identity = NodeIdentity.load_or_create(directory)
    return ClusterCA.load(devstack.ca_dir).issue_node_certificate(
        identity, data_dir=directory, hosts=["127.0.0.1", "localhost"]
    )


@pytest.fixture
def other_requester(devstack: Devstack, tmp_path: Path) -> Iterator[NodeFiles]:
    """A second, real requester process of the same cluster, which no compute node joined."""
    files = cluster_member(devstack, tmp_path / "other-requester")
    node = NodeProcess(
        files.data_dir,
        [
            "--orchestrator",
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--api-host",
            "127.0.0.1",
            "--api-port",
            "0",
        ],
    )
    try:
        eventually(lambda: "is running" in node.output(), timeout=30, what="the requester start")
        yield files
    finally:
        code = node.stop()
    assert code == 0, node.output()


def _local_state(data_dir: Path, execution_id: str) -> str | None:
    """The execution's state in a compute node's own store (read-only), or None."""
    db = sqlite3.connect(f"file:{data_dir / 'compute' / 'executions.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT state FROM executions WHERE id = ?", (execution_id,)).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


async def _command_as(files: NodeFiles, target_id: str, address: str, command: object) -> None:
    async with ComputeClient(NodeIdentity.load(files.data_dir), files, timeout=5) as client:
        client.register_node(target_id, address)
        if isinstance(command, AskForBidRequest):
            await client.ask_for_bid(target_id, command)
        elif isinstance(command, BidDecision) and command.accepted:
            await client.bid_accepted(target_id, command)
        elif isinstance(command, BidDecision):
            await client.bid_rejected(target_id, command)
        else:
            assert isinstance(command, CancelExecutionRequest)
            await client.cancel_execution(target_id, command)


def test_compute_node_refuses_work_from_a_requester_it_did_not_join(
    devstack: Devstack, other_requester: NodeFiles, busybox_image: str, tmp_path: Path
) -> None:
    target = devstack.compute[0]
    stranger = cluster_member(devstack, tmp_path / "never-joined")
    for sender in (other_requester, stranger):
        injected = make_execution(
            engine="docker",
            node_id=target.node_id,
            params={"Image": busybox_image, "Parameters": ["echo", "injected"]},
        )
        with pytest.raises(PermissionDenied):
            asyncio.run(
                _command_as(
                    sender,
                    target.node_id,
                    target.grpc_address,
                    AskForBidRequest(execution=injected, wait_for_approval=False),
                )
            )
        # Nothing of it was acted on: no record, no container.
        assert _local_state(target.data_dir, injected.id) is None
        assert containers(f"bacalhau-executionID={injected.id}") == []
    log = target.log.read_text(errors="replace")
    for sender in (other_requester, stranger):
        assert f"refused AskForBid from node {NodeIdentity.load(sender.data_dir).node_id}" in log


def test_compute_node_refuses_decisions_and_cancels_from_untrusted_nodes(
    devstack: Devstack, other_requester: NodeFiles, busybox_image: str, tmp_path: Path
) -> None:
    stranger = cluster_member(devstack, tmp_path / "never-joined")
    job_id = devstack.ok(
        "docker", "run", "--no-wait", "--id-only", busybox_image, "--", "sleep", "60"
    ).strip()
    try:
        execution = eventually(
            lambda: _running_execution(devstack, job_id), timeout=30, what="the job running"
        )
        target = devstack.node(execution.node_id)
        commands: list[object] = [
            BidDecision(execution.id, accepted=False, justification="forged"),
            CancelExecutionRequest(execution.id, "forged"),
            BidDecision(execution.id, accepted=True, justification="forged"),
        ]
        for sender in (other_requester, stranger):
            for command in commands:
                with pytest.raises(PermissionDenied):
                    asyncio.run(_command_as(sender, target.node_id, target.grpc_address, command))
        # Still running, in its container, on the node.
        assert _local_state(target.data_dir, execution.id) == "Running"
        still = _running_execution(devstack, job_id)
        assert still is not None and still.id == execution.id
    finally:
        # The legitimate requester can still stop it.
        devstack.client.stop_job(job_id, "test finished")
    eventually(
        lambda: devstack.client.get_job(job_id).job.state == JobStateType.STOPPED,
        timeout=10,
        what="the job stopping",
    )
    eventually(
        lambda: _local_state(target.data_dir, execution.id) == "Cancelled",
        timeout=10,
        what="the compute node cancelling the execution",
    )
