"""Membership messages and records survive the protobuf edge unchanged; a signed record is a
standard SignedPayload envelope."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bacalhau._proto.v1 import membership_pb2
from bacalhau.errors import PermissionDenied
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
    RecordVerifier,
    Suspect,
)
from bacalhau.models import LivenessState, NodeType, Resources
from bacalhau.transport._convert_membership import (
    message_from_proto,
    message_to_proto,
    signed_record_from_proto,
    signed_record_to_proto,
)
from bacalhau.transport._signing import open_sealed
from tests.gossip.harness import CODEC, START_NS, identity, record, signed

A, B = identity(1), identity(2)

FULL = record(
    A,
    START_NS + 9,
    roles=frozenset({NodeType.COMPUTE, NodeType.REQUESTER}),
    api_address="10.0.0.1:1234",
    publisher_address="10.0.0.1:6001",
    labels={"zone": "b", "gpu": "none"},
    engines=("docker", "wasm"),
    input_sources=("urldownload", "inline", "localdirectory"),
    publishers=("local", "noop"),
    total_capacity=Resources(cpu=8, memory=2**34, disk=2**40, gpu=1),
    available_capacity=Resources(cpu=1.5, memory=2**30, disk=2**39),
    queued_capacity=Resources(cpu=0.5, memory=2**20),
    running_executions=3,
    enqueued_executions=2,
    software_version="v0.1.0",
    health="disk almost full",
    leaving=True,
    env_allow_list=("AWS_*", "HOME"),
)


def test_a_record_round_trips_through_the_codec() -> None:
    assert CODEC.decode(CODEC.encode(FULL)) == FULL
    assert CODEC.encode(FULL) == CODEC.encode(FULL)  # deterministic


def test_the_env_allow_list_survives_signing_and_the_wire() -> None:
    # A requester refuses jobs forwarding a variable no node allows: it must see the
    # patterns exactly as the compute node's operator wrote them.
    sealed = signed(A, START_NS + 5, env_allow_list=("AWS_*", "GIT?UB_TOKEN"))
    wire = membership_pb2.SignedMemberRecord.FromString(
        signed_record_to_proto(sealed).SerializeToString()
    )
    opened = RecordVerifier(CODEC).open(signed_record_from_proto(wire))
    assert isinstance(opened, NodeRecord)
    assert opened.env_allow_list == ("AWS_*", "GIT?UB_TOKEN")
    info = opened.to_node_info()
    assert info.compute is not None and info.compute.env_allow_list == ["AWS_*", "GIT?UB_TOKEN"]


def test_a_signed_record_is_a_standard_signed_envelope() -> None:
    sealed = signed(A, START_NS + 4)
    envelope = signed_record_to_proto(sealed).record
    opened = open_sealed(envelope, membership_pb2.MemberRecord, expected_signer=A.node_id)
    assert opened.node_id == A.node_id and opened.version == START_NS + 4
    # ... and a record signed for another message type does not pass.
    with pytest.raises(PermissionDenied):
        open_sealed(envelope, membership_pb2.PingRequest, expected_signer=A.node_id)
    assert RecordVerifier(CODEC).open(sealed) == record(A, START_NS + 4)


@pytest.mark.parametrize(
    "message",
    [
        Ping(
            1,
            B.node_id,
            "10.0.0.1:4222",
            (signed(A), Suspect(B.node_id, START_NS, A.node_id), Dead(A.node_id, 5, B.node_id)),
        ),
        Ack(2, (signed(B, START_NS + 1),)),
        PingReq(3, B.node_id, "10.0.0.2:4222", "10.0.0.1:4222"),
        Nack(4),
        Gossip((Dead(B.node_id, START_NS, A.node_id),)),
        PushPull(
            (
                MemberSnapshot(signed(A), LivenessState.ALIVE, 0),
                MemberSnapshot(signed(B), LivenessState.SUSPECT, START_NS),
                MemberSnapshot(signed(B, START_NS + 2), LivenessState.DEAD, START_NS + 2),
                MemberSnapshot(signed(A, leaving=True), LivenessState.LEFT, 0),
            ),
            "10.0.0.1:4222",
            join=True,
        ),
        PushPull((), "10.0.0.2:4222", reply=True),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_round_trips(message: Message) -> None:
    request = message_to_proto(message, sender=A.node_id)
    assert request.sender_node_id == A.node_id
    wire = type(request).FromString(request.SerializeToString())
    assert message_from_proto(wire) == message


def test_a_record_and_the_job_model_node_info_agree() -> None:
    info = FULL.to_node_info()
    assert info.compute is not None
    assert info.compute.available_capacity == FULL.available_capacity
    back = NodeRecord.from_node_info(
        info,
        version=FULL.version,
        roles=FULL.roles,
        api_address=FULL.api_address,
        publisher_address=FULL.publisher_address,
    )
    assert back == replace(FULL, health="healthy", leaving=False)
