"""A port the devstack picked but another process took before the node bound it: the
devstack starts over on new ports; a port the user chose is never swapped for another."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.devstack import eventually

pytestmark = pytest.mark.integration

# The devstack with a port chooser that first hands out ports held by this process: the
# requester's REST port on the first start, the compute node's metrics port on the second
# (a start picks six: the requester's three, then the compute node's gRPC, publisher and
# metrics ports). The metrics port is bound last, after the node has joined the requester:
# the devstack must not call the stack ready before it is.
_SCRIPT = """
import asyncio, logging, sys
from pathlib import Path
from bacalhau.node._devstack import _run_nodes
from bacalhau.node._devstack_plan import free_port

logging.basicConfig(level=logging.WARNING)
taken = {1: int(sys.argv[2]), 12: int(sys.argv[3])}
picks = 0

def pick() -> int:
    global picks
    picks += 1
    return taken.get(picks) or free_port()

sys.exit(asyncio.run(_run_nodes(
    Path(sys.argv[1]), compute_nodes=1, api_port=int(sys.argv[4]), api_grpc_port=0,
    engines=("wasm",),
    ready_timeout=60, extra_serve_args=(), config={}, pick_port=pick,
)))
"""


@pytest.fixture
def held_ports() -> Iterator[list[int]]:
    """Two ports held by listening sockets (no SO_REUSEPORT: nobody else binds them)."""
    sockets = [socket.socket(), socket.socket()]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
        s.listen()
    yield [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()


def _devstack(data_dir: Path, held: list[int], api_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(data_dir), *map(str, held), str(api_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_picked_port_taken_before_its_node_bound_it_starts_the_devstack_over(
    tmp_path: Path, held_ports: list[int]
) -> None:
    proc = _devstack(tmp_path, held_ports, 0)
    manifest = tmp_path / "devstack.json"
    try:
        eventually(manifest.exists, timeout=90, what="the devstack's manifest")
        nodes = json.loads(manifest.read_text())["Nodes"]
        assert [n["Status"] for n in nodes] == ["running", "running"]
        ports = {p for n in nodes for p in n["Ports"].values()}
        assert not ports & set(held_ports)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # Two starts failed on a held port, each in the node that tried to bind it.
    assert err.count("was taken before its node listened: new ports") == 2, err
    assert f"requester: port {held_ports[0]}" in err and f"compute-0: port {held_ports[1]}" in err
    log = (tmp_path / "compute-0" / "node.log").read_text()
    assert f"cannot listen on 127.0.0.1:{held_ports[1]}" in log


def test_a_port_the_user_chose_is_not_swapped(tmp_path: Path, held_ports: list[int]) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    unused = int(free.getsockname()[1])
    free.close()
    # The REST port is the user's and held: the devstack fails at once, saying why.
    proc = _devstack(tmp_path, [unused, unused], held_ports[0])
    _, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert "new ports" not in err
    assert "exited while starting" in err and f"port {held_ports[0]} is already in use" in err
    assert not (tmp_path / "devstack.json").exists()
