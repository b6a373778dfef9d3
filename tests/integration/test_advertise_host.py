"""``--advertise-host``: the address a node gives out when it binds every interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity, certified_hosts
from bacalhau.node._addresses import interface_addresses, main_address
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


def _bound_to_every_interface(data_dir: Path, grpc_port: int) -> NodeProcess:
    """A requester whose gRPC port listens on every interface, without --advertise-host."""
    return NodeProcess(
        data_dir,
        ["--orchestrator", "--grpc-port", str(grpc_port), "--api-host", "127.0.0.1",
         "--api-port", str(free_port()), "--api-grpc-port", "0"],
    )  # fmt: skip


def test_a_fresh_requester_bound_to_every_interface_gives_out_an_address_others_reach(
    tmp_path: Path,
) -> None:
    """Without --advertise-host it used to give out 127.0.0.1, which other hosts cannot
    reach (test_two_hosts.py shows what that did to a cluster)."""
    reachable = main_address() or interface_addresses()[0]
    grpc_port = free_port()
    data_dir = tmp_path / "requester"
    requester = _bound_to_every_interface(data_dir, grpc_port)
    try:
        eventually(lambda: "bprotocol:" in requester.output(), timeout=60, what="its start")
        assert f"bprotocol: {reachable}:{grpc_port}" in requester.output(), requester.output()
        # It certified itself for that address (and every other of this machine's).
        assert set(interface_addresses()) <= certified_hosts(NodeFiles.in_dir(data_dir))
    finally:
        assert requester.stop() == 0, requester.output()


def test_a_node_whose_certificate_names_only_loopback_still_gives_out_its_address(
    tmp_path: Path,
) -> None:
    """Members reach each other by node ID, not by the address a certificate names."""
    ca = ClusterCA.create(tmp_path / "ca")
    data_dir = tmp_path / "node"
    identity = NodeIdentity.load_or_create(data_dir)
    ca.issue_node_certificate(identity, data_dir=data_dir, hosts=["localhost", "127.0.0.1"])
    grpc_port = free_port()
    node = _bound_to_every_interface(data_dir, grpc_port)
    reachable = main_address() or interface_addresses()[0]
    try:
        eventually(lambda: "bprotocol:" in node.output(), timeout=60, what="its start")
        assert f"bprotocol: {reachable}:{grpc_port}" in node.output(), node.output()
    finally:
        assert node.stop() == 0, node.output()


def test_a_node_of_another_clusters_ca_is_told_why_it_cannot_join(tmp_path: Path) -> None:
    """A compute node certified by another CA than its seed's: the handshake fails on every
    try, and the node says why (two clusters' CAs) and what to do, not just the TLS error."""
    nodes = []
    for name in ("requester", "stranger"):
        ca = ClusterCA.create(tmp_path / f"{name}-ca")
        data_dir = tmp_path / name
        identity = NodeIdentity.load_or_create(data_dir)
        ca.issue_node_certificate(identity, data_dir=data_dir, hosts=["localhost", "127.0.0.1"])
        nodes.append(data_dir)
    grpc_port = free_port()
    requester = NodeProcess(
        nodes[0],
        ["--orchestrator", "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
         "--api-host", "127.0.0.1", "--api-port", str(free_port()), "--api-grpc-port", "0"],
    )  # fmt: skip
    stranger: NodeProcess | None = None
    try:
        eventually(lambda: "bprotocol:" in requester.output(), timeout=60, what="the start")
        stranger = NodeProcess(
            nodes[1],
            ["--compute", "--grpc-host", "127.0.0.1", "--grpc-port", str(free_port()),
             "--publisher-port", str(free_port()), "--seed", f"127.0.0.1:{grpc_port}"],
        )  # fmt: skip
        seen = stranger
        eventually(
            lambda: "identifying the node at seed" in seen.output(), timeout=60, what="a try"
        )
        out = stranger.output()
        assert "this node's cluster CA did not sign" in out, out
        assert "not of one cluster" in out and "bacalhau ca issue" in out, out
    finally:
        if stranger is not None:
            stranger.stop()
        assert requester.stop() == 0, requester.output()
