"""The devstack's plan: one CA, an identity and certificate per node, distinct free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.identity import NodeFiles, check_node_files
from bacalhau.node import build_executors, plan_devstack


def test_plan_creates_trust_material_and_distinct_ports(tmp_path: Path) -> None:
    nodes = plan_devstack(data_dir=tmp_path, compute_nodes=3, api_port=0)
    assert [n.role for n in nodes] == ["requester", "compute", "compute", "compute"]
    assert len({n.node_id for n in nodes}) == 4
    for n in nodes:
        assert check_node_files(NodeFiles.in_dir(n.data_dir)) == n.node_id
    ports = [n.grpc_address for n in nodes] + [n.publisher_address for n in nodes[1:]]
    assert len(set(ports)) == len(ports)
    requester_grpc = nodes[0].grpc_address
    for n in nodes[1:]:
        assert requester_grpc in n.args  # every compute node joins the requester
    # Planning again reuses the CA and identities (a restarted devstack keeps its node IDs).
    again = plan_devstack(data_dir=tmp_path, compute_nodes=3, api_port=0)
    assert [n.node_id for n in again] == [n.node_id for n in nodes]


def test_negative_node_count(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        plan_devstack(data_dir=tmp_path, compute_nodes=-1, api_port=0)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(InvalidConfiguration) as info:
        build_executors(["docker", "qemu"], allow_image_pull=False, node_id="12D3KooWabc")
    assert "qemu" in info.value.message and "wasm" in info.value.hint
    built = build_executors(["WASM", "noop"], allow_image_pull=False, node_id="12D3KooWabc")
    assert sorted(built) == ["noop", "wasm"]
