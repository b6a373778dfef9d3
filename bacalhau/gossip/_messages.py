"""What members say to each other, and what the core asks its driver to do.

The protocol is datagram-like: every message is one-way, and answers (an ack to a ping, a
push-pull reply) are messages of their own. The sender of a received message is whatever the
network authenticated (over gRPC: the node ID in the caller's TLS certificate); messages do not
name their sender, so they cannot lie about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bacalhau.gossip._record import NodeRecord, SignedRecord
from bacalhau.models import LivenessState

# -- piggybacked updates -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suspect:
    """``accuser`` could not reach ``node_id`` at record version ``incarnation``."""

    node_id: str
    incarnation: int
    accuser: str


@dataclass(frozen=True, slots=True)
class Dead:
    """``accuser`` declared ``node_id`` dead at record version ``incarnation``."""

    node_id: str
    incarnation: int
    accuser: str


#: A member's own signed record says it is alive (or leaving); peers' claims say it is not.
Update = SignedRecord | Suspect | Dead


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """One member in a full-state exchange: its record and how the sender sees it."""

    record: SignedRecord
    state: LivenessState
    #: For a suspect or dead member, the record version the claim is about.
    incarnation: int


# -- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """A direct probe of ``target_node_id``; answered by an :class:`Ack` with the same sequence."""

    sequence: int
    target_node_id: str
    #: Where to send the ack (the prober may not be known to the target yet).
    reply_address: str
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a :class:`Ping`, from its target or relayed by a ping-req helper."""

    sequence: int
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True, slots=True)
class PingReq:
    """Please probe ``target_node_id`` for me and relay its ack (indirect probe)."""

    sequence: int
    target_node_id: str
    target_address: str
    reply_address: str


@dataclass(frozen=True, slots=True)
class Nack:
    """A ping-req helper's report that the target did not answer it in time either."""

    sequence: int


@dataclass(frozen=True, slots=True)
class Gossip:
    """Updates only, pushed to a few random members."""

    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class PushPull:
    """The sender's full state; the receiver merges it and, unless ``reply``, answers in kind.

    With ``join`` it is a joining node's first contact through a seed address.
    """

    states: tuple[MemberSnapshot, ...]
    reply_address: str
    join: bool = False
    reply: bool = False


Message = Ping | Ack | PingReq | Nack | Gossip | PushPull


@dataclass(frozen=True, slots=True)
class Outbound:
    """Send ``message`` to ``address``; when ``node_id`` is set, only that node may receive it
    (over gRPC the channel is pinned to it), otherwise (a seed) whoever answers there."""

    node_id: str | None
    address: str
    message: Message


# -- what observers learn ----------------------------------------------------------------------


class MemberEventKind(StrEnum):
    JOINED = "joined"
    #: A newer record of a live member (capacity, labels, ...).
    UPDATED = "updated"
    SUSPECT = "suspect"
    #: Back to alive: a suspicion refuted, a dead member returned, a departed one rejoined.
    ALIVE = "alive"
    DEAD = "dead"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A member as one node sees it."""

    record: NodeRecord
    state: LivenessState
    #: When the state last changed (the core's clock).
    since: float

    @property
    def node_id(self) -> str:
        return self.record.node_id


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: MemberEventKind
    member: MemberInfo
    #: The state before this event (None for a member seen for the first time).
    previous: LivenessState | None


@dataclass(slots=True)
class Effects:
    """What one step of the core produced: messages to send and events to tell observers."""

    messages: list[Outbound] = field(default_factory=list)
    events: list[MemberEvent] = field(default_factory=list)
