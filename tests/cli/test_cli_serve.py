"""``bacalhau serve`` for real: a requester process started by the CLI, driven by the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bacalhau.cli import cli

pytestmark = pytest.mark.integration


@pytest.fixture
def requester(tmp_path: Path) -> Iterator[int]:
    runner = CliRunner()
    ca, data = tmp_path / "ca", tmp_path / "requester"
    assert runner.invoke(cli, ["ca", "init", "--ca-dir", str(ca)]).exit_code == 0
    issued = runner.invoke(cli, ["ca", "issue", "--ca-dir", str(ca), "--data-dir", str(data)])
    assert issued.exit_code == 0, issued.output
    log = (tmp_path / "serve.log").open("wb")
    # The root's options written before `serve` are the node's, as Bacalhau's are.
    # (Its own win: --api-port 0 over the root's 1.)
    args = ["--data-dir", str(data), "-c", "Labels=rack=r1,pre=serve", "--api-port", "1"]
    args += ["serve", "--orchestrator", "--api-host", "127.0.0.1"]
    args += ["--api-port", "0", "--grpc-host", "127.0.0.1", "--grpc-port", "0"]
    # No node will join: the job below fails after a 1 s wait for nodes, not the default 30.
    args += ["-c", "max_attempts=2", "-c", "rejoin_grace=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bacalhau", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    try:
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            found = re.search(r"API: http://[\d.]+:(\d+)", (tmp_path / "serve.log").read_text())
            port = int(found.group(1)) if found else 0
            time.sleep(0.05)
        assert port, (tmp_path / "serve.log").read_text()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_starts_a_requester_the_cli_can_use(requester: int, tmp_path: Path) -> None:
    address = ["--api-host", "127.0.0.1", "--api-port", str(requester)]
    node = CliRunner().invoke(cli, [*address, "agent", "node", "--output", "json"])
    assert node.exit_code == 0, node.output
    info = json.loads(node.stdout)  # the NodeInfo itself, as Bacalhau prints it
    assert info["Labels"]["rack"] == "r1" and info["NodeType"] == "Requester"
    assert info["Labels"]["pre"] == "serve"  # a -c before `serve`
    assert (tmp_path / "requester" / "orchestrator").is_dir()  # --data-dir before `serve`
    run = CliRunner().invoke(cli, [*address, "docker", "run", "busybox", "--", "echo", "hi"])
    # No compute node has joined: the job fails, and the CLI says so with a hint.
    assert run.exit_code == 1
    assert "Error: job j-" in run.stderr and "not enough nodes" in run.stderr
    assert "Hint: " in run.stderr


def test_serve_refuses_unknown_configuration_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--orchestrator", "--data-dir", str(tmp_path), "-c", "colour=blue"]
    )
    assert result.exit_code == 1
    assert "unknown configuration key 'colour'" in result.stderr and "Hint:" in result.stderr


def test_serve_refuses_a_port_range_outside_the_unprivileged_ports(tmp_path: Path) -> None:
    runner = CliRunner()
    ca, data = tmp_path / "ca", tmp_path / "node"
    assert runner.invoke(cli, ["ca", "init", "--ca-dir", str(ca)]).exit_code == 0
    issued = runner.invoke(cli, ["ca", "issue", "--ca-dir", str(ca), "--data-dir", str(data)])
    assert issued.exit_code == 0, issued.output
    args = ["serve", "--orchestrator", "--compute", "--data-dir", str(data), "-c", "engines=wasm"]
    args += ["--api-port", "0", "--grpc-port", "0", "--publisher-port", "0"]
    result = runner.invoke(cli, [*args, "-c", "Compute.Network.PortRangeStart=80"])
    assert result.exit_code == 1
    assert "invalid port range 80-32000" in result.stderr
    assert "PortRangeStart" in result.stderr and "Hint:" in result.stderr


def test_devstack_config_must_be_key_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["devstack", "--data-dir", str(tmp_path / "stack"), "-c", "labels"]
    )
    assert result.exit_code == 2
    assert "'labels' is not of the form Key=Value" in result.stderr
    assert not (tmp_path / "stack").exists()


def test_serve_refuses_managed_bucket_settings_without_a_bucket(tmp_path: Path) -> None:
    # (A requester's first start makes its own certificate: nothing to set up.)
    runner = CliRunner()
    args = ["serve", "--orchestrator", "--data-dir", str(tmp_path / "node")]
    args += ["--api-port", "0", "--grpc-port", "0", "-c", "Publishers.Types.S3Managed.Key=r"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert "Publishers.Types.S3Managed needs a Bucket" in result.stderr
    assert "Hint:" in result.stderr


def test_bacalhau_1_5_serve_flags_are_the_keys_they_became(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "node")]
    # --node-type compute: a compute node, which needs its requester's address.
    compute = runner.invoke(cli, ["serve", "--node-type", "compute", *data])
    assert compute.exit_code == 2 and "a compute-only node needs --seed" in compute.stderr
    assert "Flag --node-type is deprecated: use --orchestrator and/or --compute" in compute.stderr
    # A flag's value reaches its key, and is checked as the key's.
    bad = runner.invoke(cli, ["serve", "--requester", *data, "--limit-total-cpu", "lots"])
    assert bad.exit_code == 1, bad.output
    assert "Compute.AllocatedCapacity.CPU" in bad.stderr
    assert "Flag --limit-total-cpu is deprecated: it sets Compute.AllocatedCapacity.CPU" in (
        bad.stderr
    )
    # A retired one is accepted and said to do nothing; TLS is refused as its key is.
    tls = runner.invoke(cli, ["serve", "--requester", *data, "--ipfs-connect", "/ip4/x", "--tls"])
    assert tls.exit_code == 1
    assert "Flag --ipfs-connect is deprecated and has no effect" in tls.stderr
    assert "API.TLS.UseTLS" in tls.stderr
    unknown = runner.invoke(cli, ["serve", "--node-type", "edge", *data])
    assert unknown.exit_code == 2 and "unknown node type edge" in unknown.stderr


def test_deprecated_flags_translate_in_order() -> None:
    from bacalhau.cli._serve_flags import legacy_settings

    flags = {
        "legacy_flag__orchestrators": ("nats://a:4222", "nats://b:4222"),
        "legacy_flag__web_ui": True,
        "legacy_flag__network_port": "4242",
        "legacy_flag__node_type": ("requester,compute",),
        "name": "kept",
    }
    assert legacy_settings(flags) == {
        "Compute.Orchestrators": "nats://a:4222,nats://b:4222",
        "WebUI.Enabled": "true",
        "Orchestrator.Port": "4242",
        "Orchestrator.Enabled": "True",
        "Compute.Enabled": "True",
    }
    assert flags == {"name": "kept"}  # taken out; the command's own stay
