"""Cluster membership: SWIM-style probing, signed node records, failure detection.

- :class:`Membership` is the protocol core: a pure state machine (no clock, no sockets) fed
  with :meth:`~Membership.tick` and :meth:`~Membership.receive`, answering with
  :class:`Effects` (messages to send, :class:`MemberEvent` for observers).
- :class:`MembershipRunner` drives it under asyncio with the real clock over a
  :class:`Network` (the gRPC adapter lives in :mod:`bacalhau.transport`), and lets the rest of
  the node read the member list and subscribe to changes.
- :mod:`bacalhau.gossip.simulation` runs hundreds of cores over a simulated network in
  virtual time (latency, loss, partitions, kills and restarts).

Records (:class:`NodeRecord`) are versioned and signed by the node they describe; a receiver
applies only newer, authentic records about their own signer and counts every rejection in
:class:`GossipMetrics`. Liveness states are :class:`bacalhau.models.LivenessState`.
"""

from bacalhau.gossip._core import Membership
from bacalhau.gossip._messages import (
    Ack,
    Dead,
    Effects,
    Gossip,
    MemberEvent,
    MemberEventKind,
    MemberInfo,
    MemberSnapshot,
    Message,
    Nack,
    Outbound,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    Update,
)
from bacalhau.gossip._metrics import GossipMetrics
from bacalhau.gossip._record import (
    NodeRecord,
    RecordCodec,
    RecordVerifier,
    Rejection,
    SignedRecord,
    seal_record,
    signing_input,
)
from bacalhau.gossip._runner import MembershipRunner, Network
from bacalhau.gossip._settings import GossipSettings

__all__ = [
    "Ack",
    "Dead",
    "Effects",
    "Gossip",
    "GossipMetrics",
    "GossipSettings",
    "MemberEvent",
    "MemberEventKind",
    "MemberInfo",
    "MemberSnapshot",
    "Membership",
    "MembershipRunner",
    "Message",
    "Nack",
    "Network",
    "NodeRecord",
    "Outbound",
    "Ping",
    "PingReq",
    "PushPull",
    "RecordCodec",
    "RecordVerifier",
    "Rejection",
    "SignedRecord",
    "Suspect",
    "Update",
    "seal_record",
    "signing_input",
]
