"""``node``, ``agent``, ``version``, ``ca`` and the node-starting commands' flags."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from cryptography import x509

from bacalhau.cli import cli
from bacalhau.identity import ClusterCA, NodeIdentity, node_id_from_certificate
from bacalhau.models import Membership
from tests.api.test_api_nodes_agent import add_compute
from tests.cli.conftest import Cli


def test_node_list_pages_with_next_token(bacalhau: Cli) -> None:
    add_compute(bacalhau.orch, "n-compute-1", 4)
    add_compute(bacalhau.orch, "n-compute-2", 4)
    page = bacalhau(["node", "list", "--limit", "2", "--output", "json"])
    assert [n["Info"]["NodeID"] for n in json.loads(page.stdout)] == ["n-compute-1", "n-compute-2"]
    token = page.stderr.split("--next-token")[1].split()[0]
    rest = bacalhau(["node", "list", "--next-token", token])
    assert rest.exit_code == 0, rest.output
    assert "n-memory" in rest.stdout and "n-compute" not in rest.stdout
    assert "--next-token" not in rest.stderr


def test_node_commands(bacalhau: Cli) -> None:
    add_compute(bacalhau.orch, "n-compute-1", 4, zone="eu")
    table = bacalhau(["node", "list"])
    assert table.exit_code == 0
    header = table.stdout.splitlines()[0].split()
    assert header[:4] == ["ID", "TYPE", "APPROVAL", "STATUS"] and "LABELS" in header
    assert "zone=eu" in table.stdout and "PENDING" in table.stdout
    listed = json.loads(bacalhau(["node", "list", "--output", "json"]).stdout)
    assert {n["Info"]["NodeID"] for n in listed} == {"n-compute-1", "n-memory-requester"}
    pending = json.loads(
        bacalhau(["node", "list", "--filter-approval", "pending", "--output", "json"]).stdout
    )
    assert [n["Info"]["NodeID"] for n in pending] == ["n-compute-1"]
    described = yaml.safe_load(bacalhau(["node", "describe", "n-comp"]).stdout)
    assert described["Info"]["ComputeNodeInfo"]["ExecutionEngines"] == ["docker", "wasm"]
    approved = bacalhau(["node", "approve", "n-compute-1", "-m", "looks fine"])
    assert approved.exit_code == 0
    assert bacalhau.server.run(bacalhau.orch.get_node("n-compute-1")).membership == (
        Membership.APPROVED
    )
    again = bacalhau(["node", "approve", "n-compute-1"])
    assert again.exit_code == 1 and "already approved" in again.stderr
    missing = bacalhau(["node", "describe", "n-nothing"])
    assert missing.exit_code == 1 and "Hint: check the node ID" in missing.stderr


def test_node_list_column_groups(bacalhau: Cli) -> None:
    add_compute(bacalhau.orch, "n-compute-1", 4, zone="eu")
    shown = bacalhau(["node", "list", "--show", "version,features", "--output", "csv", "--wide"])
    assert shown.exit_code == 0, shown.output
    rows = {r["ID"]: r for r in csv.DictReader(io.StringIO(shown.stdout))}
    assert "VERSION" in rows["n-compute-1"] and "CPU" not in rows["n-compute-1"]
    assert rows["n-compute-1"]["ENGINES"] == "docker wasm"
    assert rows["n-memory-requester"]["ENGINES"] == ""  # not a compute node
    wrong = bacalhau(["node", "list", "--show", "labels,colour"])
    assert wrong.exit_code == 2 and "colour: not a column group" in wrong.stderr


def test_agent_and_version(bacalhau: Cli) -> None:
    assert yaml.safe_load(bacalhau(["agent", "alive"]).stdout) == {"Status": "OK"}
    version = json.loads(bacalhau(["agent", "version", "--output", "json"]).stdout)
    assert version["GitVersion"] == "v1.5.2" and version["GOOS"]
    node = yaml.safe_load(bacalhau(["agent", "node"]).stdout)
    assert node["NodeID"] == "n-memory-requester" and node["NodeType"] == "Requester"
    # Bacalhau's three lines by default; a row with --output table.
    text = bacalhau(["agent", "version"]).stdout.splitlines()
    assert text[0] == "Bacalhau v1.5.2"
    assert text[1].startswith("BuildDate ") and text[2].startswith("GitCommit ")
    assert bacalhau(["agent", "version", "--output", "table"]).stdout.split()[:2] == [
        "VERSION",
        "BUILD",
    ]
    both = bacalhau(["version"])
    assert both.stdout.split()[:4] == ["CLIENT", "SERVER", "UPDATE", "MESSAGE"]
    assert "v1.5.2" in both.stdout
    # Bacalhau's keys (cmd/util/version.go, BuildVersionInfo).
    as_json = json.loads(bacalhau(["version", "--output", "json"]).stdout)
    assert as_json["serverVersion"]["GitVersion"] == "v1.5.2"
    assert as_json["clientVersion"]["GitVersion"].startswith("v")
    assert {"Major", "Minor", "GitCommit", "GOOS", "GOARCH"} <= set(as_json["clientVersion"])
    # --client needs no server at all; without one, the client's version and a warning.
    offline = CliRunner().invoke(cli, ["--api-port", "1", "version", "--client"])
    assert offline.exit_code == 0 and offline.stdout.split()[0] == "CLIENT"
    unreachable = CliRunner().invoke(cli, ["--api-port", "1", "version", "--output", "json"])
    assert unreachable.exit_code == 0 and "serverVersion" not in unreachable.stdout
    assert "Warning: could not get the server's version" in unreachable.stderr


def test_ca_init_and_issue(tmp_path: Path) -> None:
    ca_dir, node_dir = tmp_path / "ca", tmp_path / "node"
    runner = CliRunner()
    created = runner.invoke(cli, ["ca", "init", "--ca-dir", str(ca_dir)])
    assert created.exit_code == 0, created.output
    ClusterCA.load(ca_dir)
    twice = runner.invoke(cli, ["ca", "init", "--ca-dir", str(ca_dir)])
    assert twice.exit_code == 1 and "already exists" in twice.stderr and "Hint:" in twice.stderr
    issued = runner.invoke(
        cli,
        ["ca", "issue", "--ca-dir", str(ca_dir), "--data-dir", str(node_dir), "--host", "10.1.2.3"],
    )
    assert issued.exit_code == 0, issued.output
    identity = NodeIdentity.load(node_dir)
    assert f"Node ID: {identity.node_id}" in issued.stdout
    cert = x509.load_pem_x509_certificate((node_dir / "tls.crt").read_bytes())
    assert node_id_from_certificate(cert) == identity.node_id
    no_ca = runner.invoke(
        cli, ["ca", "issue", "--ca-dir", str(tmp_path / "none"), "--data-dir", str(node_dir)]
    )
    assert no_ca.exit_code == 1 and "Hint: create one with `bacalhau ca init" in no_ca.stderr


def test_serve_and_devstack_flags(tmp_path: Path) -> None:
    # (`serve` with no role starts a requester, as Bacalhau's does: test_first_start.)
    runner = CliRunner()
    lonely = runner.invoke(cli, ["serve", "--compute", "--data-dir", str(tmp_path)])
    assert lonely.exit_code == 2 and "--orchestrator-address" in lonely.stderr
    help_text = runner.invoke(cli, ["serve", "--help"]).stdout
    for flag in ("--grpc-port", "--publisher-port", "--engines", "--labels", "BACALHAU_DIR"):
        assert flag in help_text
    assert "--compute-nodes" in runner.invoke(cli, ["devstack", "--help"]).stdout
