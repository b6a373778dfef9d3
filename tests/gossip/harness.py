"""Members for core tests: real identities, real signed records, the wire codec."""

from __future__ import annotations

import random
from dataclasses import replace

from bacalhau.gossip import (
    GossipSettings,
    Membership,
    MemberSnapshot,
    NodeRecord,
    Outbound,
    SignedRecord,
    seal_record,
)
from bacalhau.identity import NodeIdentity
from bacalhau.models import LivenessState, NodeType, Resources
from bacalhau.transport import MEMBER_RECORD_CODEC

CODEC = MEMBER_RECORD_CODEC
START_NS = 1_800_000_000 * 10**9


def identity(n: int) -> NodeIdentity:
    return NodeIdentity.from_seed(bytes([n]) * 32)


def record(ident: NodeIdentity, version: int = START_NS, **changes: object) -> NodeRecord:
    base = NodeRecord(
        node_id=ident.node_id,
        version=version,
        roles=frozenset({NodeType.COMPUTE}),
        grpc_address=f"10.0.0.{ident.node_id[-3:]}:4222",
        engines=("docker", "wasm"),
        available_capacity=Resources(cpu=2, memory=2**30),
        total_capacity=Resources(cpu=4, memory=2**31),
        labels={"zone": "a"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def signed(ident: NodeIdentity, version: int = START_NS, **changes: object) -> SignedRecord:
    return seal_record(ident, CODEC, record(ident, version, **changes))


def member(
    ident: NodeIdentity, *, settings: GossipSettings | None = None, seed: int = 0
) -> Membership:
    return Membership(
        identity=ident,
        record=record(ident),
        codec=CODEC,
        settings=settings,
        rng=random.Random(seed),
    )


def knowing(core: Membership, *others: SignedRecord) -> Membership:
    """Make ``core`` know ``others`` as alive members (without gossiping about them)."""
    core.preload(
        [MemberSnapshot(s, LivenessState.ALIVE, 0) for s in others], others[0].node_id, 0.0
    )
    return core


def to(node_id: str, messages: list[Outbound]) -> list[Outbound]:
    return [m for m in messages if m.node_id == node_id]
