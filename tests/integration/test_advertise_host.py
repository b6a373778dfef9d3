"""``--advertise-host``: the address a node gives out when it binds every interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import NodeProcess, eventually

pytestmark = pytest.mark.integration


def test_a_node_binding_every_interface_gives_out_its_advertised_host(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    data_dir = tmp_path / "node"
    identity = NodeIdentity.load_or_create(data_dir)
    ca.issue_node_certificate(identity, data_dir=data_dir, hosts=["localhost", "127.0.0.1"])
    grpc_port = free_port()
    node = NodeProcess(
        data_dir,
        [
            "--orchestrator",
            "--grpc-host",
            "0.0.0.0",
            "--grpc-port",
            str(grpc_port),
            "--api-host",
            "127.0.0.1",
            "--api-port",
            str(free_port()),
            # Not the default gRPC API port: another test's node may hold it.
            "--api-grpc-port",
            "0",
            "--advertise-host",
            "localhost",
        ],
    )
    try:
        eventually(lambda: "bprotocol:" in node.output(), timeout=60, what="the node's start")
        assert f"bprotocol: localhost:{grpc_port}" in node.output(), node.output()
    finally:
        assert node.stop() == 0, node.output()
