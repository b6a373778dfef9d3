"""Membership messages and node records <-> protobuf, in one place.

:data:`MEMBER_RECORD_CODEC` is the :class:`bacalhau.gossip.RecordCodec` every node uses: a
record's signed payload is a serialized ``bacalhau.v1.MemberRecord``, so a signed record is a
standard :class:`SignedPayload`. The other functions map the gossip core's messages to the
requests of ``MembershipService`` and back; the sender is never taken from a message (it is
the TLS peer), so ``sender_node_id`` is only checked against it by the servicer.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import DecodeError

from bacalhau._proto.v1 import membership_pb2 as pb
from bacalhau._proto.v1 import types_pb2
from bacalhau.errors import InvalidCID, InvalidRequest
from bacalhau.gossip import (
    Ack,
    Dead,
    Gossip,
    MemberSnapshot,
    Message,
    Nack,
    NodeRecord,
    Ping,
    PingReq,
    PushPull,
    SignedRecord,
    Suspect,
    Update,
)
from bacalhau.models import LivenessState, NodeType
from bacalhau.storage.cid import CID
from bacalhau.transport._convert import resources_from_proto, resources_to_proto

_ROLE_TO_PB = {
    NodeType.REQUESTER: types_pb2.NODE_TYPE_REQUESTER,
    NodeType.COMPUTE: types_pb2.NODE_TYPE_COMPUTE,
}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}

_STATE_TO_PB = {
    LivenessState.ALIVE: pb.LIVENESS_STATE_ALIVE,
    LivenessState.SUSPECT: pb.LIVENESS_STATE_SUSPECT,
    LivenessState.DEAD: pb.LIVENESS_STATE_DEAD,
    LivenessState.LEFT: pb.LIVENESS_STATE_LEFT,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
_STATE_FROM_PB[pb.LIVENESS_STATE_UNSPECIFIED] = LivenessState.ALIVE


def _bad(what: str) -> InvalidRequest:
    return InvalidRequest(f"malformed membership message: {what}", component="Membership")


# -- records -----------------------------------------------------------------------------------


def member_record_to_proto(record: NodeRecord) -> pb.MemberRecord:
    return pb.MemberRecord(
        node_id=record.node_id,
        version=record.version,
        roles=sorted(_ROLE_TO_PB[r] for r in record.roles),
        grpc_address=record.grpc_address,
        api_address=record.api_address,
        publisher_address=record.publisher_address,
        labels=dict(record.labels),
        execution_engines=record.engines,
        storage_sources=record.input_sources,
        publishers=record.publishers,
        total_capacity=resources_to_proto(record.total_capacity),
        available_capacity=resources_to_proto(record.available_capacity),
        queued_capacity=resources_to_proto(record.queued_capacity),
        running_executions=record.running_executions,
        enqueued_executions=record.enqueued_executions,
        software_version=record.software_version,
        health=record.health,
        leaving=record.leaving,
        held_roots=[_held_root_to_proto(c, n) for c, n in record.held_roots.items()],
        env_allow_list=record.env_allow_list,
    )


def member_record_from_proto(msg: pb.MemberRecord) -> NodeRecord:
    roles = set()
    for role in msg.roles:
        if role not in _ROLE_FROM_PB:
            raise _bad(f"unknown role {role}")
        roles.add(_ROLE_FROM_PB[role])
    return NodeRecord(
        node_id=msg.node_id,
        version=msg.version,
        roles=frozenset(roles),
        grpc_address=msg.grpc_address,
        api_address=msg.api_address,
        publisher_address=msg.publisher_address,
        labels=dict(msg.labels),
        engines=tuple(msg.execution_engines),
        input_sources=tuple(msg.storage_sources),
        publishers=tuple(msg.publishers),
        total_capacity=resources_from_proto(msg.total_capacity),
        available_capacity=resources_from_proto(msg.available_capacity),
        queued_capacity=resources_from_proto(msg.queued_capacity),
        running_executions=msg.running_executions,
        enqueued_executions=msg.enqueued_executions,
        software_version=msg.software_version,
        health=msg.health,
        leaving=msg.leaving,
        held_roots=_held_roots_from_proto(msg.held_roots),
        env_allow_list=tuple(msg.env_allow_list),
    )


def _held_root_to_proto(cid: str, size: int) -> pb.HeldRoot:
    return pb.HeldRoot(cid=CID.parse(cid).binary, size=size)


def _held_roots_from_proto(roots: Iterable[pb.HeldRoot]) -> dict[str, int]:
    out: dict[str, int] = {}
    for root in roots:
        try:
            out[str(CID(root.cid))] = root.size
        except InvalidCID:
            raise _bad("a held root is not a CID") from None
    return out


class ProtoRecordCodec:
    """Records as serialized ``bacalhau.v1.MemberRecord`` (a :class:`RecordCodec`)."""

    @property
    def type_name(self) -> str:
        return pb.MemberRecord.DESCRIPTOR.full_name

    def encode(self, record: NodeRecord) -> bytes:
        return member_record_to_proto(record).SerializeToString(deterministic=True)

    def decode(self, payload: bytes) -> NodeRecord:
        try:
            msg = pb.MemberRecord.FromString(payload)
        except DecodeError:
            raise _bad("a member record does not parse") from None
        return member_record_from_proto(msg)


#: The codec of node records on the wire.
MEMBER_RECORD_CODEC = ProtoRecordCodec()


def signed_record_to_proto(signed: SignedRecord) -> pb.SignedMemberRecord:
    return pb.SignedMemberRecord(
        record=types_pb2.SignedPayload(
            payload=signed.payload, signature=signed.signature, signer=signed.node_id
        ),
        version=signed.version,
    )


def signed_record_from_proto(msg: pb.SignedMemberRecord) -> SignedRecord:
    envelope = msg.record
    return SignedRecord(envelope.signer, msg.version, envelope.payload, envelope.signature)


# -- updates and snapshots ---------------------------------------------------------------------


def _update_to_proto(update: Update) -> pb.MemberUpdate:
    if isinstance(update, SignedRecord):
        return pb.MemberUpdate(record=signed_record_to_proto(update))
    claim = pb.MemberClaim(
        node_id=update.node_id, incarnation=update.incarnation, accuser_node_id=update.accuser
    )
    if isinstance(update, Suspect):
        return pb.MemberUpdate(suspect=claim)
    return pb.MemberUpdate(dead=claim)


def _update_from_proto(msg: pb.MemberUpdate) -> Update:
    kind = msg.WhichOneof("update")
    if kind == "record":
        return signed_record_from_proto(msg.record)
    if kind == "suspect":
        c = msg.suspect
        return Suspect(c.node_id, c.incarnation, c.accuser_node_id)
    if kind == "dead":
        c = msg.dead
        return Dead(c.node_id, c.incarnation, c.accuser_node_id)
    raise _bad("an update says nothing")


def _updates_from_proto(updates: object) -> tuple[Update, ...]:
    return tuple(_update_from_proto(u) for u in updates)  # type: ignore[attr-defined]


def _snapshot_to_proto(snap: MemberSnapshot) -> pb.MemberSnapshot:
    return pb.MemberSnapshot(
        record=signed_record_to_proto(snap.record),
        state=_STATE_TO_PB[snap.state],
        incarnation=snap.incarnation,
    )


def _snapshot_from_proto(msg: pb.MemberSnapshot) -> MemberSnapshot:
    state = _STATE_FROM_PB.get(msg.state)
    if state is None:
        raise _bad(f"unknown liveness state {msg.state}")
    return MemberSnapshot(signed_record_from_proto(msg.record), state, msg.incarnation)


# -- messages ----------------------------------------------------------------------------------

#: A request of MembershipService.
MembershipRequest = (
    pb.PingRequest
    | pb.AckRequest
    | pb.PingReqRequest
    | pb.NackRequest
    | pb.GossipRequest
    | pb.PushPullRequest
)


def message_to_proto(message: Message, *, sender: str) -> MembershipRequest:
    """The request that carries ``message`` from ``sender``."""
    if isinstance(message, Ping):
        return pb.PingRequest(
            sender_node_id=sender,
            sequence=message.sequence,
            target_node_id=message.target_node_id,
            reply_address=message.reply_address,
            updates=[_update_to_proto(u) for u in message.updates],
        )
    if isinstance(message, Ack):
        return pb.AckRequest(
            sender_node_id=sender,
            sequence=message.sequence,
            updates=[_update_to_proto(u) for u in message.updates],
        )
    if isinstance(message, PingReq):
        return pb.PingReqRequest(
            sender_node_id=sender,
            sequence=message.sequence,
            target_node_id=message.target_node_id,
            target_address=message.target_address,
            reply_address=message.reply_address,
        )
    if isinstance(message, Nack):
        return pb.NackRequest(sender_node_id=sender, sequence=message.sequence)
    if isinstance(message, Gossip):
        return pb.GossipRequest(
            sender_node_id=sender, updates=[_update_to_proto(u) for u in message.updates]
        )
    return pb.PushPullRequest(
        sender_node_id=sender,
        states=[_snapshot_to_proto(s) for s in message.states],
        reply_address=message.reply_address,
        join=message.join,
        reply=message.reply,
    )


def message_from_proto(request: MembershipRequest) -> Message:
    """The gossip message a request carries (its sender is checked by the servicer)."""
    if isinstance(request, pb.PingRequest):
        return Ping(
            request.sequence,
            request.target_node_id,
            request.reply_address,
            _updates_from_proto(request.updates),
        )
    if isinstance(request, pb.AckRequest):
        return Ack(request.sequence, _updates_from_proto(request.updates))
    if isinstance(request, pb.PingReqRequest):
        return PingReq(
            request.sequence,
            request.target_node_id,
            request.target_address,
            request.reply_address,
        )
    if isinstance(request, pb.NackRequest):
        return Nack(request.sequence)
    if isinstance(request, pb.GossipRequest):
        return Gossip(_updates_from_proto(request.updates))
    return PushPull(
        tuple(_snapshot_from_proto(s) for s in request.states),
        request.reply_address,
        join=request.join,
        reply=request.reply,
    )
