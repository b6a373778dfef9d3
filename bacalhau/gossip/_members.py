"""Who a member knows, in which state, and whom it probes next.

The protocol core asks this table the questions it asks on every step (how many members are
live, pick k random ones, who is next to probe), so each is answered without walking the
whole table: a cluster of hundreds answers in O(1) per step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from bacalhau.gossip._messages import MemberInfo
from bacalhau.gossip._record import NodeRecord, SignedRecord
from bacalhau.models import LivenessState

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT
DEAD = LivenessState.DEAD


@dataclass(slots=True)
class Suspicion:
    """Lifeguard's dynamic suspicion timeout for one member.

    The timeout starts at ``high`` and falls (logarithmically) towards ``low`` as independent
    accusers confirm it, reaching ``low`` at ``expected`` confirmations: a real failure is
    confirmed quickly by many, a slow or unlucky prober is alone and gives the suspect time.
    """

    incarnation: int
    started: float
    low: float
    high: float
    expected: int
    accusers: set[str]
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.recompute()

    def confirm(self, accuser: str) -> bool:
        """Count an accuser; True if it is a new one (the deadline may have moved)."""
        if accuser in self.accusers:
            return False
        self.accusers.add(accuser)
        self.recompute()
        return True

    def recompute(self) -> None:
        confirmations = len(self.accusers) - 1
        if self.expected < 1:
            timeout = self.low
        else:
            fraction = math.log(confirmations + 1) / math.log(self.expected + 1)
            timeout = max(self.low, self.high - (self.high - self.low) * fraction)
        self.deadline = self.started + timeout


@dataclass(slots=True)
class Member:
    """A known member: its latest verified record and how this node sees it."""

    record: NodeRecord
    signed: SignedRecord
    state: LivenessState
    since: float
    suspicion: Suspicion | None = None
    #: For a dead member: the record version it was declared dead at.
    dead_incarnation: int = 0

    @property
    def node_id(self) -> str:
        return self.record.node_id

    def info(self) -> MemberInfo:
        return MemberInfo(self.record, self.state, self.since)


class MemberTable:
    """The other members (never this node itself)."""

    __slots__ = ("_by_id", "_counts", "_list", "_order", "_order_index", "_rng", "_tombstones")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._by_id: dict[str, Member] = {}
        #: The same members in a list, for O(1) random draws.
        self._list: list[Member] = []
        self._counts = dict.fromkeys(LivenessState, 0)
        #: Versions of reaped members: an old copy of their record can never return.
        self._tombstones: dict[str, int] = {}
        #: This probe round's order (SWIM's shuffled round-robin) and the position in it.
        self._order: list[str] = []
        self._order_index = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._list)

    def get(self, node_id: str) -> Member | None:
        return self._by_id.get(node_id)

    def count(self, *states: LivenessState) -> int:
        return sum(self._counts[s] for s in states)

    def known_version(self, node_id: str) -> int:
        """The newest record version seen of ``node_id`` (-1 if never)."""
        m = self._by_id.get(node_id)
        if m is not None:
            return m.record.version
        return self._tombstones.get(node_id, -1)

    def add(self, member: Member) -> None:
        self._by_id[member.node_id] = member
        self._list.append(member)
        self._counts[member.state] += 1
        if member.state is ALIVE:
            self.probe_soon(member.node_id)

    def set_state(self, member: Member, state: LivenessState, now: float) -> None:
        if state is member.state:
            return
        self._counts[member.state] -= 1
        self._counts[state] += 1
        if member.state.is_down() and not state.is_down():
            self.probe_soon(member.node_id)
        member.state = state
        member.since = now

    def reap(self, horizon: float) -> None:
        """Forget members dead or gone since before ``horizon``, keeping their versions."""
        gone = [m for m in self._list if m.state.is_down() and m.since <= horizon]
        for m in gone:
            del self._by_id[m.node_id]
            self._counts[m.state] -= 1
            self._tombstones[m.node_id] = m.record.version
        if gone:
            self._list = list(self._by_id.values())

    # -- choosing members ------------------------------------------------------------------------

    def probe_soon(self, node_id: str) -> None:
        """Put a new or returning member at a random place in the rest of this round."""
        self._order.insert(self._rng.randint(self._order_index, len(self._order)), node_id)

    def next_to_probe(self) -> Member | None:
        """The next live member in round-robin order; a new shuffled round when one ends
        (which bounds the time until any given member is probed to two rounds)."""
        for _ in range(2):
            while self._order_index < len(self._order):
                m = self._by_id.get(self._order[self._order_index])
                self._order_index += 1
                if m is not None and not m.state.is_down():
                    return m
            self._order = [m.node_id for m in self._list if not m.state.is_down()]
            self._rng.shuffle(self._order)
            self._order_index = 0
        return None

    def random(
        self,
        count: int,
        *,
        states: tuple[LivenessState, ...],
        exclude: str | None = None,
        dead_since: float | None = None,
    ) -> list[Member]:
        """Up to ``count`` distinct random members in ``states`` (or dead since
        ``dead_since``), never ``exclude``."""

        def wanted(m: Member) -> bool:
            return m.node_id != exclude and (
                m.state in states
                or (dead_since is not None and m.state is DEAD and m.since >= dead_since)
            )

        everyone = self._list
        candidates = self.count(*states)
        if candidates >= 4 * count and candidates * 2 >= len(everyone):
            # Most members qualify: random draws find ``count`` of them in a few tries,
            # without walking the whole list (this runs for every probe and gossip round).
            chosen: dict[str, Member] = {}
            for _ in range(8 * count):
                m = everyone[self._rng.randrange(len(everyone))]
                if wanted(m):
                    chosen[m.node_id] = m
                    if len(chosen) == count:
                        return list(chosen.values())
        pool = [m for m in everyone if wanted(m)]
        if len(pool) <= count:
            return pool
        return self._rng.sample(pool, count)
