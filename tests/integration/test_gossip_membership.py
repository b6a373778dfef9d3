"""Membership by gossip between real node processes, with the default gossip settings.

- The requester learns of compute nodes only through gossip (they seed through it; there is
  no join call): each is listed ALIVE and CONNECTED with a last-seen time, by the REST API and
  by ``bacalhau node list``.
- A SIGKILLed compute node is declared dead at the requester within a generous bound of the
  defaults' design target (5 s on a quiet cluster; the bound here is 10 s, the figure itself
  is measured by ``bench/membership.py``), while the other node stays alive.
- ``bacalhau node describe`` shows the full record (roles, version, addresses), liveness
  included.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bacalhau.models import Connection, LivenessState, NodeState
from tests.integration.devstack import Devstack, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-gossip")]

#: Generous: the defaults aim at 5 s; a loaded 2-core machine must not make this flaky.
DETECTION_BOUND_SECONDS = 10.0
#: A live node wrongly suspected refutes within a probe round or two.
ALIVE_BOUND_SECONDS = 5.0


def _all_alive(stack: Devstack) -> dict[str, NodeState] | None:
    nodes = {n.info.node_id: n for n in stack.client.list_nodes()}
    wanted = [nodes.get(compute.node_id) for compute in stack.compute]
    if all(n is not None and n.liveness == LivenessState.ALIVE for n in wanted):
        return nodes
    return None


def _alive(stack: Devstack, node_id: str) -> NodeState | None:
    node = next((n for n in stack.client.list_nodes() if n.info.node_id == node_id), None)
    return node if node is not None and node.liveness == LivenessState.ALIVE else None


def test_compute_nodes_are_known_through_gossip_and_a_killed_one_is_declared_dead(
    tmp_path: Path,
) -> None:
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2)
    try:
        # A node busy starting up (or a loaded machine) may miss one 0.2 s probe and be
        # SUSPECT for a moment until it refutes: SWIM's transient state, shown as it is.
        nodes = eventually(
            lambda: _all_alive(stack), timeout=ALIVE_BOUND_SECONDS, what="every node alive"
        )
        for compute in stack.compute:
            state = nodes[compute.node_id]
            assert state.connection == Connection.CONNECTED
            assert state.liveness == LivenessState.ALIVE
            assert state.last_seen_ns > 0

        def table_all_alive() -> list[list[str]] | None:
            table = stack.ok("node", "list")
            lines = [line.split() for line in table.splitlines() if line.strip()]
            return lines if all("ALIVE" in row for row in lines[1:]) else None

        header, *rows = eventually(
            table_all_alive, timeout=ALIVE_BOUND_SECONDS, what="node list all ALIVE"
        )
        assert header[:5] == ["ID", "TYPE", "APPROVAL", "STATUS", "LIVENESS"]
        assert len(rows) == 3
        victim = stack.compute[0]
        described = json.loads(stack.ok("node", "describe", victim.node_id, "--output", "json"))
        assert described["Liveness"] == "ALIVE" and described["Connection"] == "CONNECTED"
        assert described["Info"]["ComputeNodeInfo"]["ExecutionEngines"]
        assert described["Roles"] == ["Compute"] and described["RecordVersion"] > 0
        assert described["Addresses"]["GRPC"] == victim.grpc_address
        assert set(described["Addresses"]) == {"GRPC", "Publisher"}

        stack.kill_node(victim.name)
        killed = time.monotonic()
        dead = stack.wait_for_node(
            victim.name, connection=Connection.DISCONNECTED, timeout=DETECTION_BOUND_SECONDS
        )
        assert time.monotonic() - killed < DETECTION_BOUND_SECONDS
        assert dead.liveness == LivenessState.DEAD
        survivor = eventually(
            lambda: _alive(stack, stack.compute[1].node_id),
            timeout=ALIVE_BOUND_SECONDS,
            what="the other compute node alive",
        )
        assert survivor.connection == Connection.CONNECTED
        listed = eventually(
            lambda: next(
                (row for row in stack.ok("node", "list").splitlines() if "DEAD" in row), None
            ),
            timeout=5,
            what="the node list showing the dead node",
        )
        assert "DISCONNECTED" in listed
    except BaseException:
        stack.stop(check=False)
        raise
    stack.stop()
