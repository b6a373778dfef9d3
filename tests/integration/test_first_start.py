"""A requester's first start needs nothing but ``bacalhau serve``, as in Bacalhau: with no
certificate in its data directory it creates the cluster CA there and certifies itself. A
compute node certified by that CA joins it and runs a job; a compute node with no
certificate is still refused, saying how to get one; a node with its own certificates is
left as it is."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bacalhau.client import Client
from bacalhau.models import Connection, JobStateType
from tests.integration.devstack import NodeProcess, certified_node_dir, eventually, run_bacalhau

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("first-start")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_fresh_requester_makes_the_cluster_ca_and_a_certified_compute_node_joins(
    tmp_path: Path, busybox_image: str
) -> None:
    api, grpc = _free_port(), _free_port()
    data = tmp_path / "requester"
    requester = NodeProcess(
        data,
        ["--orchestrator", "--api-host", "127.0.0.1", "--api-port", str(api),
         "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc)],
    )  # fmt: skip
    compute: NodeProcess | None = None
    try:
        requester.wait_running()
        ca_dir = data / "cluster-ca"
        assert stat.S_IMODE(os.stat(ca_dir / "ca.key").st_mode) == 0o600
        ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
        own = x509.load_pem_x509_certificate((data / "tls.crt").read_bytes())
        own.verify_directly_issued_by(ca)
        assert f"bacalhau ca issue --ca-dir {ca_dir}" in requester.output()

        node_dir = tmp_path / "compute"
        issued = run_bacalhau(["ca", "issue", "--ca-dir", str(ca_dir), "--data-dir", str(node_dir)])
        assert issued.returncode == 0, issued.stderr
        node_id = issued.stdout.split("Node ID: ", 1)[1].split()[0]
        compute = NodeProcess.compute(node_dir, f"127.0.0.1:{grpc}", "--engines", "docker")
        client = Client(f"http://127.0.0.1:{api}")

        def joined() -> bool:
            state = {n.info.node_id: n for n in client.list_nodes()}.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=30, what="the compute node joining")
        done = run_bacalhau(
            ["--api-host", "127.0.0.1", "--api-port", str(api),
             "docker", "run", "--id-only", busybox_image, "--", "echo", "first start"]
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        details = client.get_job(done.stdout.strip(), executions=True)
        assert details.job.state == JobStateType.COMPLETED
        [ex] = details.executions
        assert ex.run_output is not None and ex.run_output.stdout == "first start\n"
    finally:
        if compute is not None:
            compute.stop()
        assert requester.stop() == 0, requester.output()
    # A restart keeps the CA and the certificate it made.
    again = NodeProcess(
        data,
        ["--orchestrator", "--api-port", str(_free_port()), "--grpc-port", "0"],
    )
    try:
        again.wait_running()
        assert "created the cluster CA" not in again.output()
        assert (data / "tls.crt").read_bytes() == own.public_bytes(Encoding.PEM)
    finally:
        again.stop()


def test_a_compute_node_without_a_certificate_is_told_how_to_get_one(tmp_path: Path) -> None:
    node = NodeProcess.compute(tmp_path / "compute", "127.0.0.1:1")
    eventually(lambda: node.process.poll() is not None, timeout=30, what="the node exiting")
    out = node.output()
    assert node.process.returncode != 0
    assert "cluster CA certificate" in out and "does not exist" in out
    assert "bacalhau ca issue --ca-dir CA_DIR --data-dir" in out
    assert not (tmp_path / "compute" / "cluster-ca").exists()


def test_a_certified_node_whose_key_is_lost_is_refused_and_no_key_is_written(
    tmp_path: Path,
) -> None:
    data = certified_node_dir(tmp_path, "compute")
    (data / "node.key").unlink()
    node = NodeProcess.compute(data, "127.0.0.1:1")
    eventually(lambda: node.process.poll() is not None, timeout=30, what="the node exiting")
    out = node.output()
    assert node.process.returncode != 0
    assert "node key" in out and "is missing" in out and "identity (its key) is lost" in out
    assert "restore node.key from a backup" in out
    # Nothing was made up in its place: the data dir is as the operator left it.
    assert not (data / "node.key").exists()


def test_a_requester_with_its_own_certificate_is_left_as_it_is(tmp_path: Path) -> None:
    data = certified_node_dir(tmp_path, "requester")
    before = (data / "tls.crt").read_bytes()
    node = NodeProcess(data, ["--orchestrator", "--api-port", "0", "--grpc-port", "0"])
    try:
        node.wait_running()
        assert not (data / "cluster-ca").exists()
        assert (data / "tls.crt").read_bytes() == before
    finally:
        node.stop()


def test_serve_told_nothing_starts_a_requester_as_bacalhau_does(tmp_path: Path) -> None:
    # Upstream's "orchestrator, no config" suite: `bacalhau serve` and nothing else.
    api = _free_port()
    node = NodeProcess(tmp_path / "node", ["--api-port", str(api), "--grpc-port", "0"])
    try:
        node.wait_running()
        assert "starting a requester (orchestrator) node" in node.output()
        client = Client(f"http://127.0.0.1:{api}")
        [only] = client.list_nodes()
        assert only.info.node_type.value == "Requester"
        # Its configuration as Bacalhau's clients read it (the same suite's checks).
        config = client.agent_config()
        assert config["Orchestrator"]["Enabled"] is True
        assert config["Compute"]["Enabled"] is False
        assert config["NameProvider"] == "puuid"
        assert (config["API"]["Host"], config["API"]["Port"]) == ("0.0.0.0", api)
    finally:
        node.stop()
