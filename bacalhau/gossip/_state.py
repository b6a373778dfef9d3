"""The state one membership core keeps, what can be read from it, and where its effects collect.

:class:`MembershipState` holds the fields the protocol parts of
:class:`~bacalhau.gossip.Membership` share (set by its constructor: the member table, the
broadcast queue, the probe and relays in flight, the timers), the read-only view the rest of
the node uses, Lifeguard's local health score, and the buffer of outbound messages and events
that every entry point flushes into its :class:`Effects`. Nothing here reacts to a message or
a timer: the parts built on it do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from bacalhau.errors import InvalidRequest
from bacalhau.gossip._broadcast import BroadcastQueue
from bacalhau.gossip._members import Member, MemberTable, Suspicion
from bacalhau.gossip._messages import Effects, MemberEvent, MemberInfo, Message, Outbound
from bacalhau.gossip._metrics import GossipMetrics
from bacalhau.gossip._record import (
    NodeRecord,
    RecordCodec,
    RecordVerifier,
    SignedRecord,
    seal_record,
)
from bacalhau.gossip._settings import GossipSettings
from bacalhau.identity import NodeIdentity
from bacalhau.models import LivenessState

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT
LEFT = LivenessState.LEFT

# What is in flight: this node's current probe, and the ping-reqs it serves for others.


@dataclass(slots=True)
class _Probe:
    target: str
    sequence: int
    indirect_at: float
    end_at: float
    helpers: set[str] = field(default_factory=set)
    nacks: int = 0
    indirect_sent: bool = False


@dataclass(slots=True)
class _Relay:
    """A ping-req this node is serving: relay the target's ack, or nack in time."""

    target: str
    origin: str
    origin_sequence: int
    origin_address: str
    nack_at: float
    expires_at: float
    nacked: bool = False


class MembershipState:
    """The fields and the read-only view of one membership core (constructor arguments:
    see :class:`~bacalhau.gossip.Membership`)."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        record: NodeRecord,
        codec: RecordCodec,
        settings: GossipSettings | None = None,
        seeds: Sequence[str] = (),
        rng: random.Random | None = None,
        verifier: RecordVerifier | None = None,
        now: float = 0.0,
    ) -> None:
        if record.node_id != identity.node_id:
            raise InvalidRequest(
                f"record of {record.node_id} given to node {identity.node_id}",
                component="Membership",
            )
        self._identity = identity
        self._codec = codec
        self._settings = settings or GossipSettings()
        self._seeds = tuple(s for s in seeds if s and s != record.grpc_address)
        self._rng = rng or random.Random()
        self._verifier = verifier or RecordVerifier(codec)
        self._record = record
        self._signed = seal_record(identity, codec, record)
        self._members = MemberTable(self._rng)
        #: While merging a preloaded state: apply records without re-broadcasting them.
        self._quiet = False
        self._broadcasts = BroadcastQueue()
        self.metrics = GossipMetrics()
        #: Where the last record of this node's ID from another address came from.
        self.conflicting_address = ""
        self._sequence = 0
        self._awareness = 0
        #: A suspect to probe next, out of turn (see :meth:`_suspect`).
        self._confirm_target: str | None = None
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspects: dict[str, Suspicion] = {}
        self._left = False
        self._now = now
        self._out = Effects()
        s = self._settings
        # Random phases, so that members started together do not probe in lockstep.
        self._next_probe_at = now + self._rng.uniform(0, s.probe_interval)
        self._next_gossip_at = now + self._rng.uniform(0, s.gossip_interval)
        self._next_push_pull_at = now + self._rng.uniform(0.5, 1.0) * s.push_pull_interval
        self._next_reconnect_at = now + self._rng.uniform(0.5, 1.0) * s.reconnect_interval
        self._next_join_at = now
        self._next_reap_at = now + s.reap_after_seconds

    # -- reading ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._identity.node_id

    @property
    def settings(self) -> GossipSettings:
        return self._settings

    @property
    def local_record(self) -> NodeRecord:
        return self._record

    @property
    def signed_record(self) -> SignedRecord:
        """This node's own record as signed for the cluster."""
        return self._signed

    @property
    def awareness(self) -> int:
        """Lifeguard's local health score: 0 is healthy; probes stretch by (score + 1)."""
        return self._awareness

    def member(self, node_id: str) -> MemberInfo | None:
        """One member (this node included), or None if unknown."""
        if node_id == self.node_id:
            return MemberInfo(self._record, LEFT if self._left else ALIVE, 0.0)
        m = self._members.get(node_id)
        return m.info() if m is not None else None

    def members(self) -> list[MemberInfo]:
        """Every known member, this node first, dead and departed ones included."""
        own = self.member(self.node_id)
        assert own is not None
        return [own, *(m.info() for m in self._members)]

    def live_count(self) -> int:
        """Members believed alive or suspect, this node included."""
        return 1 + self._members.count(ALIVE, SUSPECT)

    # -- local health ----------------------------------------------------------------------------

    def _adjust_awareness(self, delta: int) -> None:
        top = self._settings.awareness_max - 1
        self._awareness = min(top, max(0, self._awareness + delta))

    # -- effects ---------------------------------------------------------------------------------

    def _send_to_member(self, m: Member, message: Message) -> None:
        self._send(m.record.node_id, m.record.grpc_address, message)

    def _send(self, node_id: str | None, address: str, message: Message) -> None:
        if not address:
            return
        self.metrics.messages_sent += 1
        self._out.messages.append(Outbound(node_id, address, message))

    def _event(self, event: MemberEvent) -> None:
        self._out.events.append(event)

    def _flush(self) -> Effects:
        out, self._out = self._out, Effects()
        return out
