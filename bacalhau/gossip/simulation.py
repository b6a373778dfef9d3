"""Hundreds of membership cores over a simulated network, in virtual time.

A discrete-event simulation: one priority queue of timed events (member timers and message
deliveries), a virtual clock that jumps from one event to the next, and a network with
latency, jitter, packet loss, partitions, and members that can be killed and restarted. The
cores are the real protocol (:class:`bacalhau.gossip.Membership`), records are really signed
and verified (each one once for the whole simulation, through a shared verdict memo), and a
fixed seed makes every run reproducible::

    sim = Simulation(codec=MEMBER_RECORD_CODEC, seed=1)
    ids = sim.start_cluster(200)            # everyone already knows everyone
    sim.run_for(2.0)
    sim.kill(ids[7])
    sim.run_until(lambda: sim.everyone_sees(ids[7], LivenessState.DEAD), timeout=10)

The codec is injected (the wire codec lives in :mod:`bacalhau.transport`, which gossip may
not import).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from bacalhau.gossip._core import Membership
from bacalhau.gossip._messages import MemberEvent, MemberSnapshot, Message, Outbound
from bacalhau.gossip._record import NodeRecord, RecordCodec, RecordVerifier, Rejection, SignedRecord
from bacalhau.gossip._settings import GossipSettings
from bacalhau.identity import NodeIdentity
from bacalhau.models import LivenessState, NodeType, Resources

#: Virtual start of record versions (ns), so versions look like real start times.
_EPOCH_NS = 1_800_000_000 * 10**9

_TICK = 0
_DELIVER = 1

Observer = Callable[[float, str, MemberEvent], None]
#: Sees every message sent: (sender node ID, the message, whether the network delivers it).
TransmitObserver = Callable[[str, Outbound, bool], None]


@dataclass(slots=True)
class _SimNode:
    identity: NodeIdentity
    address: str
    seeds: tuple[str, ...]
    core: Membership
    running: bool = True
    scheduled: float = math.inf


@dataclass(slots=True)
class NetworkConditions:
    """One-way latency (seconds) plus uniform jitter, and the chance a message is lost."""

    latency: float = 0.0005
    jitter: float = 0.0005
    loss: float = 0.0
    #: Pairs of addresses that cannot reach each other (either way).
    cut: set[frozenset[str]] = field(default_factory=set)


class Simulation:
    """A simulated cluster; see the module docstring."""

    def __init__(
        self,
        *,
        codec: RecordCodec,
        settings: GossipSettings | None = None,
        seed: int = 0,
        network: NetworkConditions | None = None,
    ) -> None:
        self.settings = settings or GossipSettings()
        self.network = network or NetworkConditions()
        self.now = 0.0
        self.observers: list[Observer] = []
        self.transmit_observers: list[TransmitObserver] = []
        self.messages_delivered = 0
        self.messages_dropped = 0
        self._codec = codec
        self._rng = random.Random(f"simulation-{seed}")
        self._verifier = RecordVerifier(codec, memo={})
        self._nodes: dict[str, _SimNode] = {}
        self._by_address: dict[str, str] = {}
        self._queue: list[tuple[float, int, int, str, tuple[str, Message] | None]] = []
        self._counter = 0
        self._isolated: set[str] = set()

    # -- building the cluster --------------------------------------------------------------------

    @property
    def node_ids(self) -> list[str]:
        return list(self._nodes)

    def running(self) -> list[str]:
        return [i for i, n in self._nodes.items() if n.running]

    def core(self, node_id: str) -> Membership:
        return self._nodes[node_id].core

    def address(self, node_id: str) -> str:
        return self._nodes[node_id].address

    def add_node(self, *, seeds: Sequence[str] = (), labels: dict[str, str] | None = None) -> str:
        """Start a new member that joins through ``seeds`` (addresses); returns its ID."""
        identity = NodeIdentity.from_seed(self._rng.randbytes(32))
        address = f"sim-{len(self._nodes)}:4222"
        node = _SimNode(identity, address, tuple(seeds), self._new_core(identity, address, seeds))
        if labels:
            node.core.publish(_with_labels(node.core.local_record, labels), self.now)
        self._nodes[identity.node_id] = node
        self._by_address[address] = identity.node_id
        self._schedule(node)
        return identity.node_id

    def start_cluster(self, size: int) -> list[str]:
        """``size`` members that all know each other already (a warm cluster)."""
        ids = [self.add_node() for _ in range(size)]
        states = tuple(MemberSnapshot(self._signed(i), LivenessState.ALIVE, 0) for i in ids)
        for node_id in ids:
            node = self._nodes[node_id]
            # Delivered as a full-state reply from the first member: the normal merge path.
            node.core.preload(states, ids[0], self.now)
            self._schedule(node)
        return ids

    def _signed(self, node_id: str) -> SignedRecord:
        return self._nodes[node_id].core.signed_record

    def _new_core(self, identity: NodeIdentity, address: str, seeds: Sequence[str]) -> Membership:
        record = NodeRecord(
            node_id=identity.node_id,
            version=_EPOCH_NS + int(self.now * 1e9) + self._counter,
            roles=frozenset({NodeType.COMPUTE}),
            grpc_address=address,
            engines=("docker", "wasm"),
            input_sources=("urldownload", "inline"),
            publishers=("local",),
            total_capacity=Resources(cpu=4, memory=8 * 2**30, disk=100 * 2**30),
            available_capacity=Resources(cpu=4, memory=8 * 2**30, disk=100 * 2**30),
            software_version="v0.1.0",
        )
        return Membership(
            identity=identity,
            record=record,
            codec=self._codec,
            settings=self.settings,
            seeds=seeds,
            rng=random.Random(self._rng.random()),
            verifier=self._verifier,
            now=self.now,
        )

    # -- faults ----------------------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        """Stop a member dead: no goodbye, messages to it are lost."""
        self._nodes[node_id].running = False

    def restart(self, node_id: str, *, seeds: Sequence[str] | None = None) -> None:
        """Start a killed member again: same identity and address, a fresh process that
        knows nobody and joins through ``seeds`` (default: the seeds it first had)."""
        node = self._nodes[node_id]
        if seeds is not None:
            node.seeds = tuple(seeds)
        node.core = self._new_core(node.identity, node.address, node.seeds)
        node.running = True
        node.scheduled = math.inf
        self._schedule(node)

    def leave(self, node_id: str) -> None:
        """The member leaves gracefully."""
        node = self._nodes[node_id]
        effects = node.core.leave(self.now)
        self._apply(node, effects.messages, effects.events)

    def isolate(self, node_ids: Iterable[str]) -> None:
        """Partition ``node_ids`` from everyone else (they still reach each other)."""
        self._isolated = set(node_ids)

    def heal(self) -> None:
        self._isolated = set()

    # -- observing -------------------------------------------------------------------------------

    def view(self, observer: str, subject: str) -> LivenessState | None:
        info = self._nodes[observer].core.member(subject)
        return info.state if info is not None else None

    def everyone_sees(
        self, subject: str, state: LivenessState, *, version: int | None = None
    ) -> bool:
        """Every running member other than ``subject`` sees it in ``state``."""
        for node_id, node in self._nodes.items():
            if node_id == subject or not node.running:
                continue
            info = node.core.member(subject)
            if info is None or info.state is not state:
                return False
            if version is not None and info.record.version < version:
                return False
        return True

    def rejections(self) -> dict[Rejection, int]:
        totals = dict.fromkeys(Rejection, 0)
        for node in self._nodes.values():
            m = node.core.metrics
            totals[Rejection.STALE] += m.rejected_stale
            totals[Rejection.BAD_SIGNATURE] += m.rejected_bad_signature
            totals[Rejection.WRONG_NODE] += m.rejected_wrong_node
            totals[Rejection.MALFORMED] += m.rejected_malformed
        return totals

    # -- running ---------------------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        self.run_until_time(self.now + seconds)

    def run_until_time(self, end: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= end:
            at, _, kind, node_id, payload = heapq.heappop(queue)
            node = self._nodes[node_id]
            if kind == _TICK:
                if at != node.scheduled:
                    continue  # superseded by an earlier wakeup
                node.scheduled = math.inf
                self.now = at
                if node.running:
                    effects = node.core.tick(at)
                    self._apply(node, effects.messages, effects.events)
            else:
                self.now = at
                assert payload is not None
                sender, message = payload
                if node.running:
                    self.messages_delivered += 1
                    effects = node.core.receive(sender, message, at)
                    self._apply(node, effects.messages, effects.events)
        self.now = max(self.now, end)

    def run_until(
        self, condition: Callable[[], bool], *, timeout: float, step: float = 0.01
    ) -> float | None:
        """Run until ``condition()`` holds (checked every ``step``); the time it took or None."""
        start = self.now
        while self.now - start < timeout:
            if condition():
                return self.now - start
            self.run_until_time(self.now + step)
        return self.now - start if condition() else None

    def _apply(self, node: _SimNode, messages: list[Outbound], events: list[MemberEvent]) -> None:
        sender = node.identity.node_id
        for event in events:
            for observer in self.observers:
                observer(self.now, sender, event)
        for out in messages:
            self._transmit(sender, node.address, out)
        self._schedule(node)

    def _transmit(self, sender: str, sender_address: str, out: Outbound) -> None:
        net = self.network
        receiver = self._by_address.get(out.address)
        lost = (
            receiver is None
            or (out.node_id is not None and out.node_id != receiver)
            or (sender in self._isolated) != (receiver in self._isolated)
            or frozenset((sender_address, out.address)) in net.cut
            or (net.loss > 0 and self._rng.random() < net.loss)
        )
        for observer in self.transmit_observers:
            observer(sender, out, not lost)
        if lost or receiver is None:
            self.messages_dropped += 1
            return
        at = self.now + net.latency + self._rng.random() * net.jitter
        self._push(at, _DELIVER, receiver, (sender, out.message))

    def _schedule(self, node: _SimNode) -> None:
        if not node.running:
            return
        at = max(node.core.next_wakeup(), self.now)
        if at < node.scheduled:
            node.scheduled = at
            self._push(at, _TICK, node.identity.node_id, None)

    def _push(
        self, at: float, kind: int, node_id: str, payload: tuple[str, Message] | None
    ) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (at, self._counter, kind, node_id, payload))


def _with_labels(record: NodeRecord, labels: dict[str, str]) -> NodeRecord:
    return replace(record, labels=dict(labels))


__all__ = ["NetworkConditions", "Observer", "Simulation", "TransmitObserver"]
