"""A node writes ``<data-dir>/bacalhau.run`` while it serves, as Bacalhau's does: the lines a
script sources to point ``bacalhau`` at it; stopping removes it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import (
    NodeProcess,
    bacalhau_command,
    certified_node_dir,
    node_env,
)

pytestmark = pytest.mark.integration


def test_a_served_node_writes_the_lines_a_script_sources(tmp_path: Path) -> None:
    data_dir = certified_node_dir(tmp_path)
    api_port = free_port()
    args = ["--orchestrator", "--api-host", "0.0.0.0", "--api-port", str(api_port)]
    args += ["--grpc-host", "127.0.0.1", "--grpc-port", str(free_port())]
    args += ["-c", f"api_grpc_port={free_port()}", "-c", f"publisher_port={free_port()}"]
    served = NodeProcess(data_dir, args)
    run_info = data_dir / "bacalhau.run"
    try:
        served.wait_running()
        assert run_info.read_text() == (
            f"export BACALHAU_API_HOST=127.0.0.1\nexport BACALHAU_API_PORT={api_port}\n"
        )
        assert stat.S_IMODE(run_info.stat().st_mode) == 0o600
        assert f". {run_info}" in served.output()
        # As upstream's scripts use it: source it, then call the node.
        env = {k: v for k, v in node_env().items() if not k.startswith("BACALHAU_API")}
        command = " ".join(bacalhau_command("agent", "alive"))
        done = subprocess.run(
            ["bash", "-c", f". {run_info} && {command}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "OK" in done.stdout
    finally:
        served.stop()
    assert not run_info.exists()
