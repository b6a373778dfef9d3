"""The devstack as a test bed for failures: a node that dies leaves the others running and is
reported; the manifest's Args bring it back as the same node; ``-c Key=Value`` reaches every
node; bad settings are refused before anything starts."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from bacalhau.models import Connection
from tests.integration.devstack import (
    FAST_GOSSIP,
    STOP_TIMEOUT,
    Devstack,
    bacalhau_command,
    eventually,
    node_env,
    process_alive,
    run_bacalhau,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-failures")]


def test_a_killed_compute_node_is_reported_and_comes_back_from_its_manifest_args(
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=2,
        # A comma and a second "=" in one value; gossip that notices a death in about 2 s.
        config=[f"labels=suite=failures,run={run}", *FAST_GOSSIP],
    )
    try:
        # -c reached every node: the requester and both compute nodes carry the labels.
        nodes = {n.info.node_id: n for n in stack.client.list_nodes()}
        assert set(nodes) == {n.node_id for n in stack.nodes}
        for state in nodes.values():
            assert state.info.labels.get("suite") == "failures", state.info.labels
            assert state.info.labels.get("run") == run, state.info.labels

        victim = stack.kill_node("compute-0")
        reported = stack.wait_for_node_exit("compute-0")
        assert reported.exit_code == -9 and reported.pid == victim.pid
        eventually(
            lambda: (
                "devstack node compute-0" in stack.output()
                and "killed by SIGKILL" in stack.output()
            ),
            timeout=10,
            what="the devstack's report of compute-0's death",
        )
        # The devstack and every other node carry on.
        assert stack.process.poll() is None, stack.output()
        assert all(process_alive(n.pid) for n in stack.nodes if n.name != "compute-0")
        assert {n.name: n.status for n in stack.nodes} == {
            "requester": "running",
            "compute-0": "exited",
            "compute-1": "running",
        }
        # The requester (gossip settings from -c) sees compute-0 go, compute-1 stay.
        stack.wait_for_node("compute-0", connection=Connection.DISCONNECTED, timeout=15)
        stack.wait_for_node("compute-1", timeout=1)

        assert "--parent-fd" not in reported.args
        restarted = stack.restart_node("compute-0")
        back = stack.wait_for_node("compute-0", timeout=30)
        assert back.info.node_id == victim.node_id  # the same identity, from its data dir
        assert back.info.labels.get("run") == run  # and the same configuration
        assert restarted.process.poll() is None
        # The devstack does not mistake the test's process for the one that died.
        assert stack.read_manifest() and stack.node_named("compute-0").status == "exited"
    except BaseException:
        stack.stop(check=False)
        raise
    # Stops the restarted node (exit 0 on SIGTERM) and then the devstack (exit 0), and
    # checks that no process of either outlived the stop.
    stack.stop()
    assert not process_alive(restarted.pid)
    manifest = json.loads((tmp_path / "devstack" / "devstack.json").read_text())
    statuses = {n["Name"]: (n["Status"], n["ExitCode"]) for n in manifest["Nodes"]}
    assert statuses == {
        "requester": ("stopped", 0),
        "compute-0": ("exited", -9),
        "compute-1": ("stopped", 0),
    }


def test_a_requester_killed_and_restarted_from_its_args_is_rejoined(tmp_path: Path) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1, config=FAST_GOSSIP)
    try:
        requester = stack.kill_node("requester")
        assert stack.wait_for_node_exit("requester").exit_code == -9
        assert stack.process.poll() is None  # the compute node still runs: carry on
        stack.restart_node("requester")
        back = stack.wait_for_node("requester", timeout=30)
        assert back.info.node_id == requester.node_id
        # The compute node finds the restarted requester at the same address by itself.
        stack.wait_for_node("compute-0", timeout=30)
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()


def test_the_devstack_exits_non_zero_once_every_node_has_died(tmp_path: Path) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=0)
    try:
        stack.kill_node("requester")
        code = stack.process.wait(timeout=STOP_TIMEOUT)
    finally:
        stack.stop(check=False)
    assert code == 1, stack.output()
    assert "every devstack node has exited" in stack.output()


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("Colour=blue", "Colour"),
        (
            "Orchestrator.NodeManager.ManualApproval=perhaps",
            "Orchestrator.NodeManager.ManualApproval",
        ),
        ("grpc_port=4000", "grpc_port"),  # chosen by the devstack for each node
    ],
)
def test_a_bad_setting_fails_before_any_node_starts_naming_the_key(
    tmp_path: Path, setting: str, key: str
) -> None:
    data_dir = tmp_path / "devstack"
    done = subprocess.run(
        bacalhau_command("devstack", "--data-dir", str(data_dir), "-c", setting),
        capture_output=True,
        text=True,
        env=node_env(),
        stdin=subprocess.DEVNULL,
        timeout=STOP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"Field: {key}\n" in done.stderr and repr(key) in done.stderr
    assert not data_dir.exists()  # no CA, no identity, no node


def test_serve_takes_a_whole_value_after_the_first_equals(tmp_path: Path) -> None:
    # One -c is one setting: a comma in its value does not start another (unknown) key.
    done = run_bacalhau(
        ["serve", "--data-dir", str(tmp_path), "-c", "labels=a=1,b", "--orchestrator"],
        env=node_env(),
        timeout=STOP_TIMEOUT,
    )
    assert done.returncode == 1
    assert "invalid value 'a=1,b' for configuration key 'labels'" in done.stderr
