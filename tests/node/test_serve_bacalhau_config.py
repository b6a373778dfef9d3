"""Bacalhau operators' configuration, given to real ``bacalhau serve`` and ``bacalhau
devstack`` processes: a Bacalhau-style config.yaml starts a node that says, once per key,
what it ignores and why; what it refuses stops it before it starts, with a hint."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    certified_node_dir,
    run_bacalhau,
)

pytestmark = pytest.mark.integration

#: As Bacalhau's documentation writes a node's file, on free loopback ports, plus one key
#: of ours (the noop engine keeps the test off Docker).
HYBRID_YAML = """\
NameProvider: hostname
DataDir: {data_dir}
API:
  Host: 127.0.0.1
  Port: {api_port}
  Auth:
    Methods:
      ClientKey:
        Type: challenge
Orchestrator:
  Enabled: true
  Host: 127.0.0.1
  Port: {grpc_port}
  Auth:
    Token: secure-access-token
  NodeManager:
    DisconnectTimeout: 1m
  Scheduler:
    WorkerCount: 2
    QueueBackoff: 30s
Compute:
  Enabled: true
  AllocatedCapacity:
    CPU: 50%
    Memory: 2Gi
  Heartbeat:
    InfoUpdateInterval: 1m
Publishers:
  Types:
    Local:
      Address: 127.0.0.1
      Port: {publisher_port}
JobDefaults:
  Batch:
    Task:
      Resources:
        CPU: 250m
      Timeouts:
        TotalTimeout: 1h
Labels:
  region: us-west
WebUI:
  Enabled: true
  Listen: 0.0.0.0:8438
UpdateConfig:
  Interval: 24h
DisableAnalytics: true
engines: [noop]
"""

IGNORED = {
    "WebUI.Enabled": "this node has no web UI",
    "WebUI.Listen": "this node has no web UI",
    "UpdateConfig.Interval": "this node never checks for updates",
    "DisableAnalytics": "this node never sends analytics",
    "Compute.Heartbeat.InfoUpdateInterval": "re-published by gossip",
    "API.Auth.Methods": "the value given asks for no more",
}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _put(url: str, body: object) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def test_serve_with_a_bacalhau_config_file_starts_and_says_what_it_ignores(
    tmp_path: Path,
) -> None:
    data_dir = certified_node_dir(tmp_path)
    api_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        HYBRID_YAML.format(
            data_dir=data_dir, api_port=api_port, grpc_port=free_port(), publisher_port=free_port()
        )
    )
    # No --data-dir: the file names it (DataDir), as Bacalhau's files do.
    served = NodeProcess(data_dir, ["--config", str(config)], data_dir_flag=False)
    try:
        served.wait_running()
        log = served.output()
        warnings = [line for line in log.splitlines() if "configuration key" in line]
        for key, why in IGNORED.items():
            lines = [w for w in warnings if f"configuration key {key} is ignored: " in w]
            assert len(lines) == 1 and why in lines[0], (key, warnings)
            assert "WARNING" in lines[0]
        assert len(warnings) == len(IGNORED), warnings
        # The token is read, but this node's CA is kept elsewhere: nobody can join with it.
        assert "the join token (Orchestrator.Auth.Token) lets no node join here" in log

        api = f"http://127.0.0.1:{api_port}/api/v1"
        nodes = _get(f"{api}/orchestrator/nodes")["Nodes"]
        (hybrid,) = [n["Info"] for n in nodes if n["Info"].get("ComputeNodeInfo")]
        capacity = hybrid["ComputeNodeInfo"]["MaxCapacity"]
        assert capacity["Memory"] == 2 * 2**30
        assert capacity["CPU"] == pytest.approx(len(os.sched_getaffinity(0)) * 0.5, abs=0.001)
        assert hybrid["Labels"]["name"] == socket.gethostname()
        assert hybrid["Labels"]["region"] == "us-west"

        job = {
            "Type": "batch",
            "Count": 1,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}],
        }
        job_id = _put(f"{api}/orchestrator/jobs", {"Job": job})["JobID"]
        stored = _get(f"{api}/orchestrator/jobs/{job_id}")["Job"]["Tasks"][0]
        assert stored["Resources"]["CPU"] == "250m"
        assert stored["Timeouts"]["TotalTimeout"] == 3600
    finally:
        served.stop()


def test_serve_refuses_api_tls_it_cannot_serve_before_starting(tmp_path: Path) -> None:
    data_dir = certified_node_dir(tmp_path)
    config = tmp_path / "config.yaml"
    # UseTLS is a client setting too (how `bacalhau` reaches an API behind a TLS proxy): a
    # file may hold it, and a node refuses it as it starts.
    config.write_text("Orchestrator: {Enabled: true}\nAPI:\n  TLS:\n    UseTLS: true\n")
    done = run_bacalhau(["serve", "--data-dir", str(data_dir), "-c", str(config)])
    assert done.returncode == 1, done.stderr
    assert "Error: configuration key API.TLS.UseTLS = true is refused" in done.stderr
    assert "without TLS" in done.stderr and "Field: API.TLS.UseTLS" in done.stderr
    assert "Hint: terminate TLS in a reverse proxy" in done.stderr
    assert "is running" not in done.stdout
    # A server's certificate is the node's alone: refused as the file is read.
    config.write_text(
        "Orchestrator: {Enabled: true}\n"
        "API:\n  TLS:\n    CertFile: /etc/bacalhau/certs/server.crt\n"
    )
    done = run_bacalhau(["serve", "--data-dir", str(data_dir), "-c", str(config)])
    assert done.returncode == 1, done.stderr
    assert f"Error: {config}: configuration key API.TLS.CertFile = " in done.stderr
    assert "Field: API.TLS.CertFile" in done.stderr


def test_serve_config_options_name_what_is_wrong(tmp_path: Path) -> None:
    data_dir = certified_node_dir(tmp_path)
    missing = run_bacalhau(["serve", "--data-dir", str(data_dir), "-c", "nowhere.yaml"])
    assert missing.returncode == 2
    assert "configuration file 'nowhere.yaml' does not exist" in missing.stderr
    typo = run_bacalhau(
        ["serve", "--orchestrator", "--data-dir", str(data_dir), "-c", "WebUI.Enable=true"]
    )
    assert typo.returncode == 1
    assert "unknown configuration key 'WebUI.Enable'" in typo.stderr
    assert "Hint: did you mean 'WebUI.Enabled'?" in typo.stderr
    bad = run_bacalhau(
        [
            "serve",
            "--orchestrator",
            "--data-dir",
            str(data_dir),
            "-c",
            "Compute.Heartbeat.Interval=10days",
        ]
    )
    assert bad.returncode == 1
    assert "invalid value '10days' for configuration key 'Compute.Heartbeat.Interval'" in bad.stderr


def test_devstack_takes_bacalhaus_documented_capacity_settings(tmp_path: Path) -> None:
    webui = tmp_path / "webui.yaml"
    webui.write_text("WebUI:\n  Enabled: true\n")
    stack = Devstack.start(
        tmp_path / "stack",
        compute_nodes=1,
        engines="noop",
        config=[
            "Compute.AllocatedCapacity.CPU=50%",
            "Compute.AllocatedCapacity.Memory=2Gi",
            str(webui),
        ],
    )
    try:
        nodes = _get(f"{stack.api_url}/api/v1/orchestrator/nodes")["Nodes"]
        (compute,) = [n["Info"] for n in nodes if n["Info"].get("ComputeNodeInfo")]
        capacity = compute["ComputeNodeInfo"]["MaxCapacity"]
        assert capacity["Memory"] == 2 * 2**30
        assert capacity["CPU"] == pytest.approx(len(os.sched_getaffinity(0)) * 0.5, abs=0.001)
        said = [line for line in stack.output().splitlines() if "WebUI.Enabled" in line]
        assert said == [
            "devstack: configuration key WebUI.Enabled is ignored: this node has no web UI"
        ]
    finally:
        stack.stop()
