"""``node list``'s LAST SEEN counts from the requester's clock, not this machine's: a client
whose clock is hours off the requester's still shows a live node as seen "now" and a node
that left 25 s ago as "25s ago"."""

from __future__ import annotations

import time

import pytest

from bacalhau.cli._node import _last_seen, _requester_now
from bacalhau.models import LivenessState, NodeInfo, NodeState, NodeType

HOUR_NS = 3600 * 1_000_000_000


@pytest.mark.parametrize("requester_ahead", [2 * HOUR_NS, -2 * HOUR_NS])
def test_ages_count_from_the_requesters_clock(requester_ahead: int) -> None:
    requester_now = time.time_ns() + requester_ahead
    nodes = [
        NodeState(
            NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER),
            last_seen_ns=requester_now,
        ),
        NodeState(
            NodeInfo(node_id="n-live", node_type=NodeType.COMPUTE), last_seen_ns=requester_now
        ),
        NodeState(
            NodeInfo(node_id="n-left", node_type=NodeType.COMPUTE),
            last_seen_ns=requester_now - 25_000_000_000,
            liveness=LivenessState.LEFT,
        ),
    ]
    now = _requester_now(nodes)
    assert [_last_seen(n, now) for n in nodes] == ["now", "now", "25s ago"]


def test_with_no_node_alive_this_machines_clock_is_all_there_is() -> None:
    gone = NodeState(
        NodeInfo(node_id="n-dead", node_type=NodeType.COMPUTE),
        last_seen_ns=time.time_ns() - 90_000_000_000,
        liveness=LivenessState.DEAD,
    )
    assert _last_seen(gone, _requester_now([gone])) == "90s ago"
    assert _last_seen(NodeState(NodeInfo(node_id="n-x", node_type=NodeType.COMPUTE)), 0) == "-"
