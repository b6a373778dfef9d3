"""A devstack without ``--data-dir`` cleans up its temporary directory (and the cluster CA's
private key in it) when stopped, unless asked to keep it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.devstack import STOP_TIMEOUT, bacalhau_command, eventually, node_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-data")]


def _run_and_interrupt(tmp: Path, *extra: str) -> Path:
    """Start ``bacalhau devstack`` (no compute node) with ``tmp`` as the system temp dir, wait
    until it is ready, Ctrl+C it; returns the data directory it used."""
    env = {**node_env(), "TMPDIR": str(tmp)}
    out = tmp.parent / f"{tmp.name}.out"
    with out.open("wb") as sink:
        stack = subprocess.Popen(
            bacalhau_command("devstack", "--compute-nodes", "0", "--api-port", "0", *extra),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        eventually(
            lambda: "Devstack ready" in out.read_text() or stack.poll() is not None,
            timeout=60,
            what="the devstack ready",
        )
        assert stack.poll() is None, out.read_text()
        [data_dir] = tmp.glob("bacalhau-devstack-*")
        assert (data_dir / "ca" / "ca.key").exists()
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=STOP_TIMEOUT) == 0, out.read_text()
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    return data_dir


def test_temporary_data_dir_is_removed_on_ctrl_c(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    data_dir = _run_and_interrupt(tmp)
    assert not data_dir.exists()
    assert list(tmp.iterdir()) == []


def test_keep_data_keeps_it(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    data_dir = _run_and_interrupt(tmp, "--keep-data")
    assert (data_dir / "ca" / "ca.key").exists()
    assert (data_dir / "requester").is_dir()
