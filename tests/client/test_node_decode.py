"""Node states as the REST API sends them and the SDK reads them back: Bacalhau's fields plus
our gossip view (liveness, last seen, roles, record version, addresses, health)."""

from __future__ import annotations

from bacalhau.client._decode import node_state_from_dict
from bacalhau.models import (
    ComputeNodeInfo,
    Connection,
    LivenessState,
    Membership,
    NodeInfo,
    NodeState,
    NodeType,
)


def test_a_node_state_survives_the_wire_with_its_gossip_fields() -> None:
    state = NodeState(
        info=NodeInfo(
            node_id="12D3KooWnode",
            node_type=NodeType.COMPUTE,
            labels={"zone": "a"},
            compute=ComputeNodeInfo(execution_engines=["wasm"]),
        ),
        membership=Membership.PENDING,
        connection=Connection.DISCONNECTED,
        last_seen_ns=1_796_025_814_406_870_172,
        liveness=LivenessState.DEAD,
        roles=(NodeType.COMPUTE, NodeType.REQUESTER),
        record_version=1_796_025_800_000_000_007,
        addresses={"GRPC": "10.0.0.2:4222", "Publisher": "10.0.0.2:6001"},
        health="healthy",
    )
    back = node_state_from_dict(state.to_dict())
    assert back.to_dict() == state.to_dict()
    assert back.liveness is LivenessState.DEAD and back.last_seen_ns == state.last_seen_ns


def test_a_bacalhau_node_state_without_them_reads_liveness_from_its_connection() -> None:
    for connection, liveness in (
        ("CONNECTED", LivenessState.ALIVE),
        ("DISCONNECTED", LivenessState.DEAD),
    ):
        back = node_state_from_dict(
            {
                "Info": {"NodeID": "n", "NodeType": "Compute"},
                "Membership": "APPROVED",
                "Connection": connection,
            }
        )
        assert back.liveness is liveness and back.last_seen_ns == 0 and back.roles == ()
