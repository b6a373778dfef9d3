"""The devstack's plan: one CA, an identity and certificate per node, distinct free ports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.identity import NodeFiles, check_node_files
from bacalhau.node import build_executors, plan_devstack, write_manifest
from bacalhau.node._devstack_plan import NodeStatus, describe_exit


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
        # Every compute node seeds its gossip through the requester.
        seed = n.args.index("--seed")
        assert n.args[seed + 1] == requester_grpc
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


def test_settings_reach_every_node_and_args_restart_it_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = {"labels": "zone=a,tier=b", "Orchestrator.NodeManager.ManualApproval": "true"}
    nodes = plan_devstack(data_dir=Path("stack"), compute_nodes=2, api_port=0, config=settings)
    for n in nodes:
        assert n.args[n.args.index("--data-dir") + 1] == str(tmp_path / "stack" / n.name)
        assert "--parent-fd" not in n.args  # the lifeline is the devstack's, not the node's
        pairs = [n.args[i + 1] for i, arg in enumerate(n.args) if arg == "-c"]
        assert pairs == ["labels=zone=a,tier=b", "Orchestrator.NodeManager.ManualApproval=true"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("colour", "blue"), ("max_attempts", "many"), ("API.Port", "1"), ("engines", "noop")],
)
def test_a_bad_or_devstack_owned_setting_is_refused_before_anything_is_created(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        plan_devstack(data_dir=tmp_path / "stack", compute_nodes=1, api_port=0, config={key: value})
    assert info.value.details["Field"] == key
    assert not (tmp_path / "stack").exists()


def test_manifest_describes_each_node_and_is_replaced_whole(tmp_path: Path) -> None:
    nodes = plan_devstack(data_dir=tmp_path, compute_nodes=1, api_port=0)
    nodes[1].status, nodes[1].exit_code = NodeStatus.EXITED, -9
    path = write_manifest(tmp_path, nodes)
    manifest = json.loads(path.read_text())
    assert manifest["WorkingDirectory"] == os.getcwd()
    requester, compute = manifest["Nodes"]
    assert requester["Roles"] == ["requester"]
    assert set(requester["Ports"]) == {"API", "GRPC", "GRPCAPI"}
    grpc_api = requester["GRPCAPIAddress"]
    assert grpc_api == manifest["GRPCAPIAddress"] and grpc_api != requester["APIAddress"]
    args = requester["Args"]
    assert args[args.index("--api-grpc-port") + 1] == grpc_api.rsplit(":", 1)[1]
    assert (requester["Status"], requester["ExitCode"]) == ("starting", None)
    assert compute["Roles"] == ["compute"]
    assert set(compute["Ports"]) == {"GRPC", "Publisher", "Metrics"}
    metrics = compute["MetricsAddress"]
    assert metrics.startswith("127.0.0.1:") and metrics != compute["PublisherAddress"]
    assert compute["Args"][compute["Args"].index("--metrics-port") + 1] == metrics.rsplit(":")[1]
    assert (compute["Status"], compute["ExitCode"]) == ("exited", -9)
    assert compute["Args"] == nodes[1].args and compute["ID"] == nodes[1].node_id
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["devstack.json"]


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"


def test_a_manifest_that_cannot_be_written_while_supervising_is_said_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk under the devstack must not stop it (and, through the lifeline, every
    node and its jobs): the manifest is out of date, and says so."""
    from bacalhau.node._devstack import _keep_manifest

    nodes = plan_devstack(data_dir=tmp_path / "ok", compute_nodes=1, api_port=0)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    _keep_manifest(blocked, nodes)  # every write under it fails (ENOTDIR), as ENOSPC would
    assert "cannot update" in capsys.readouterr().err


def test_a_hybrid_requester_is_listed_with_both_roles(tmp_path: Path) -> None:
    nodes = plan_devstack(data_dir=tmp_path, compute_nodes=1, api_port=0, hybrid=True)
    requester = json.loads(write_manifest(tmp_path, nodes).read_text())["Nodes"][0]
    assert (requester["Role"], requester["Roles"]) == ("requester", ["requester", "compute"])
    assert "--compute" in requester["Args"] and "--orchestrator" in requester["Args"]


def test_a_port_found_free_twice_is_not_given_twice(tmp_path: Path) -> None:
    """A port found free and released may be found free again before any node binds it:
    the plan never gives one port to two listeners."""
    looks = iter([40001, 40001, 40002, 40001, 40003, 40004, 40004, 40005, 40006, 40007, 40008])
    nodes = plan_devstack(
        data_dir=tmp_path, compute_nodes=1, api_port=40002, pick_port=lambda: next(looks)
    )
    ports = [n.grpc_address for n in nodes] + [nodes[1].publisher_address]
    ports += [nodes[1].metrics_address, nodes[0].api_address, nodes[0].grpc_api_address]
    assert len(set(ports)) == len(ports), ports
