"""When the requester's view says a node was last seen: the moment it went down if this
node saw it go, and unknown (not "now") for a node first heard of as already down, such as
one that left long before a restarted requester joined."""

from __future__ import annotations

import time

from bacalhau.gossip import NodeRecord
from bacalhau.gossip._messages import MemberEvent, MemberEventKind, MemberInfo
from bacalhau.models import LivenessState
from bacalhau.node._cluster_view import GossipNodeView

RECORD = NodeRecord(node_id="node-a", version=1, grpc_address="127.0.0.1:1")


def _event(state: LivenessState, previous: LivenessState | None) -> MemberEvent:
    kind = MemberEventKind.LEFT if state is LivenessState.LEFT else MemberEventKind.DEAD
    return MemberEvent(kind, MemberInfo(RECORD, state, since=0.0), previous)


async def test_a_node_first_heard_of_as_gone_has_no_last_sighting() -> None:
    view = GossipNodeView()
    event = _event(LivenessState.LEFT, None)
    view._on_event(event)
    assert view._sighting(event.member).last_seen_ns == 0


async def test_a_node_seen_going_down_was_last_seen_then() -> None:
    view = GossipNodeView()
    before = time.time_ns()
    event = _event(LivenessState.DEAD, LivenessState.ALIVE)
    view._on_event(event)
    assert view._sighting(event.member).last_seen_ns >= before
