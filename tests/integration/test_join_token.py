"""A cluster set up the way Bacalhau's documents set one up, with real processes: the
requester has ``Orchestrator.Auth.Token``, each compute node ``Compute.Orchestrators`` (a
``nats://`` address) and the same ``Compute.Auth.Token``, and nothing else. The compute node
gets its certificate by joining (even when it starts before the requester), runs a job, and
keeps the certificate across restarts; a compute node with another token is refused with the
reason and writes nothing."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from cryptography import x509

from bacalhau.client import Client
from bacalhau.identity import NodeIdentity
from bacalhau.models import Connection, JobStateType
from tests.integration.devstack import NodeProcess, eventually, run_bacalhau

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("first-start")]

TOKEN = "join-token-for-the-integration-test-0123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requester(data: Path, api: int, grpc: int, token: str) -> NodeProcess:
    return NodeProcess(
        data,
        ["--orchestrator", "--api-host", "127.0.0.1", "--api-port", str(api),
         "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc),
         "-c", f"Orchestrator.Auth.Token={token}"],
    )  # fmt: skip


def _compute(data: Path, grpc: int, token: str) -> NodeProcess:
    # Bacalhau's spelling throughout: no --seed, no certificate.
    return NodeProcess(
        data,
        ["--compute", "--grpc-host", "127.0.0.1", "--grpc-port", "0",
         "--publisher-host", "127.0.0.1", "--publisher-port", "0", "--engines", "docker",
         "-c", f"Compute.Orchestrators=nats://127.0.0.1:{grpc}",
         "-c", f"Compute.Auth.Token={token}"],
    )  # fmt: skip


def _alt_names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in names if isinstance(n, x509.DNSName | x509.IPAddress)}


def test_a_compute_node_joins_with_bacalhaus_token_runs_a_job_and_keeps_its_certificate(
    tmp_path: Path, busybox_image: str
) -> None:
    api, grpc = _free_port(), _free_port()
    requester_dir, compute_dir = tmp_path / "requester", tmp_path / "compute"
    # The compute node starts first: it waits for its requester.
    compute = _compute(compute_dir, grpc, TOKEN)
    requester: NodeProcess | None = None
    try:
        eventually(
            lambda: "no requester let this node join yet" in compute.output(),
            timeout=30,
            what="the compute node waiting for its requester",
        )
        assert compute.process.poll() is None
        requester = _requester(requester_dir, api, grpc, TOKEN)
        requester.wait_running()
        compute.wait_running()
        assert "joined the cluster with the join token" in compute.output()
        node_id = NodeIdentity.load(compute_dir).node_id
        assert f"node {node_id} joined with the join token" in requester.output()
        # The log names what the certificate holds: not the requester's own names it was
        # refused (loopback, here).
        [said] = [
            line
            for line in requester.output().splitlines()
            if f"node {node_id} joined with the join token: certified for" in line
        ]
        assert "localhost" not in said and "127.0.0.1" not in said, said

        # What it got is a certificate from the requester's cluster CA, its key private.
        ca = x509.load_pem_x509_certificate((requester_dir / "cluster-ca" / "ca.crt").read_bytes())
        cert_pem = (compute_dir / "tls.crt").read_bytes()
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca)
        assert stat.S_IMODE(os.stat(compute_dir / "tls.key").st_mode) == 0o600
        # Certified for none of the requester's own names (on this machine it asked for
        # 127.0.0.1 and localhost too): it cannot answer for the requester at its address.
        own = _alt_names(requester_dir / "tls.crt")
        assert own and not own & _alt_names(compute_dir / "tls.crt")
        assert "this requester's own host names" in requester.output()

        client = Client(f"http://127.0.0.1:{api}")

        def joined() -> bool:
            state = {n.info.node_id: n for n in client.list_nodes()}.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=30, what="the compute node in the requester's view")
        done = run_bacalhau(
            ["--api-host", "127.0.0.1", "--api-port", str(api),
             "docker", "run", "--id-only", busybox_image, "--", "echo", "joined by token"]
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        details = client.get_job(done.stdout.strip(), executions=True)
        assert details.job.state == JobStateType.COMPLETED, details.job.state_message
        [ex] = details.executions
        assert ex.node_id == node_id
        assert ex.run_output is not None and ex.run_output.stdout == "joined by token\n"
        # The token is never shown back.
        config = client.agent_config()
        assert config["Orchestrator"]["Auth"]["Token"] == "<redacted>"
        assert TOKEN not in repr(config)

        # A restart uses the certificate it has, and does not join again.
        assert compute.stop() == 0, compute.output()
        compute = _compute(compute_dir, grpc, TOKEN)
        compute.wait_running()
        assert "joined the cluster" not in compute.output()
        assert (compute_dir / "tls.crt").read_bytes() == cert_pem
    finally:
        compute.stop()
        if requester is not None:
            assert requester.stop() == 0, requester.output()


def test_a_compute_node_with_another_token_is_refused_saying_why(tmp_path: Path) -> None:
    api, grpc = _free_port(), _free_port()
    requester = _requester(tmp_path / "requester", api, grpc, TOKEN)
    try:
        requester.wait_running()
        compute = _compute(tmp_path / "compute", grpc, "not-the-cluster-token-at-all")
        eventually(lambda: compute.process.poll() is not None, timeout=30, what="it exiting")
        out = compute.output()
        assert compute.process.returncode != 0, out
        assert "did not take this node's join token" in out
        assert "Orchestrator.Auth.Token" in out
        assert not any((tmp_path / "compute" / name).exists() for name in ("tls.crt", "tls.key"))
        assert "joined with the join token" not in requester.output()
    finally:
        requester.stop()
