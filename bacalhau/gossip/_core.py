"""The membership protocol as a pure state machine: SWIM with Lifeguard's refinements.

:class:`Membership` never reads a clock and never touches a socket. Its driver calls
:meth:`Membership.tick` when :meth:`Membership.next_wakeup` is due and
:meth:`Membership.receive` for every message the network delivers; both return
:class:`Effects` (messages to send, events for observers). The same object therefore runs
under asyncio with real gRPC (:mod:`bacalhau.gossip._runner`) and in a discrete-event
simulation of hundreds of members (:mod:`bacalhau.gossip.simulation`).

Each probe interval one member (round-robin over a shuffled list) gets a direct ping; if no ack
comes within the probe timeout, ``indirect_checks`` others are asked to ping it (ping-req) and
nack if they fail too; if still no ack by the end of the interval the member becomes suspect.
A suspicion expires into death after a timeout that starts long and shrinks as independent
members confirm it (Lifeguard), and the suspect itself refutes it by publishing a newer
record as soon as it hears of it (the version is the incarnation number). A node whose own
probes keep failing without nacks stretches its probe timing (local health multiplier).
Updates are piggybacked on pings and acks, pushed to a few random members every gossip
interval, each sent a bounded number of times; a periodic full-state push-pull with a random
member repairs whatever gossip missed, and brings a joining node up to date through a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from bacalhau.errors import InvalidRequest
from bacalhau.gossip._liveness import Liveness
from bacalhau.gossip._members import Member
from bacalhau.gossip._messages import (
    Ack,
    Effects,
    Gossip,
    MemberSnapshot,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)
from bacalhau.gossip._record import (
    NodeRecord,
)
from bacalhau.gossip._state import _Probe, _Relay
from bacalhau.models import LivenessState

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT
DEAD = LivenessState.DEAD
LEFT = LivenessState.LEFT

#: A ping-req helper nacks after this share of its own probe timeout, so the nack reaches the
#: prober before the end of its probe interval.
_NACK_SHARE = 0.8


class Membership(Liveness):
    """One member's view of the cluster and its side of the protocol (pure; see module doc).

    ``record`` is this node's own record; its ``version`` should be the node's start time in
    nanoseconds so that it supersedes anything an earlier run of the node published.
    ``seeds`` are addresses of members to join through (tried until one answers, and again
    whenever no other member is alive). ``rng`` makes a run reproducible.
    """

    # -- driving ---------------------------------------------------------------------------------

    def next_wakeup(self) -> float:
        """The time :meth:`tick` next has something to do."""
        if self._left:
            return self._next_gossip_at if self._broadcasts else math.inf
        times = [self._next_probe_at, self._next_push_pull_at, self._next_reap_at]
        if self._broadcasts:
            times.append(self._next_gossip_at)
        if self._needs_join():
            times.append(self._next_join_at)
        if self._members.count(DEAD):
            times.append(self._next_reconnect_at)
        probe = self._probe
        if probe is not None:
            times.append(probe.end_at if probe.indirect_sent else probe.indirect_at)
        for relay in self._relays.values():
            times.append(relay.expires_at if relay.nacked else relay.nack_at)
        for suspicion in self._suspects.values():
            times.append(suspicion.deadline)
        return min(times)

    def tick(self, now: float) -> Effects:
        """Run every timer that is due at ``now``."""
        self._now = now
        if self._left:
            if self._broadcasts and now >= self._next_gossip_at:
                self._gossip_round()
            return self._flush()
        s = self._settings
        if self._needs_join() and now >= self._next_join_at:
            self._join_seeds()
            self._next_join_at = now + s.join_retry_interval
        self._run_probe_timers(now)
        if now >= self._next_probe_at:
            self._start_probe()
            self._next_probe_at = now + s.probe_interval * (self._awareness + 1)
        self._run_relay_timers(now)
        for node_id, suspicion in list(self._suspects.items()):
            if now >= suspicion.deadline:
                self._declare_dead(node_id, suspicion.incarnation, self.node_id)
        if now >= self._next_gossip_at:
            if self._broadcasts:
                self._gossip_round()
            self._next_gossip_at = now + s.gossip_interval
        if now >= self._next_push_pull_at:
            self._push_pull_round()
            self._next_push_pull_at = now + s.push_pull_interval
        if now >= self._next_reconnect_at:
            self._reconnect_round()
            self._next_reconnect_at = now + s.reconnect_interval
        if now >= self._next_reap_at:
            self._members.reap(now - s.reap_after_seconds)
            self._next_reap_at = now + s.reap_after_seconds / 10
        return self._flush()

    def receive(self, sender: str, message: Message, now: float) -> Effects:
        """Handle one message from ``sender`` (the node ID the network authenticated)."""
        self._now = now
        self.metrics.messages_received += 1
        if self._left or sender == self.node_id:
            return self._flush()
        if isinstance(message, Ping):
            self._apply_updates(message.updates, sender)
            if message.target_node_id == self.node_id:
                self._send(sender, message.reply_address, Ack(message.sequence, self._piggyback()))
        elif isinstance(message, Ack):
            self._apply_updates(message.updates, sender)
            self._on_ack(sender, message)
        elif isinstance(message, PingReq):
            self._on_ping_req(sender, message)
        elif isinstance(message, Nack):
            probe = self._probe
            if probe is not None and probe.sequence == message.sequence and sender in probe.helpers:
                probe.nacks += 1
        elif isinstance(message, Gossip):
            self._apply_updates(message.updates, sender)
        elif isinstance(message, PushPull):
            self._merge(message.states, sender)
            if not message.reply:
                self._send(sender, message.reply_address, self._push_pull_message(reply=True))
        return self._flush()

    def publish(self, record: NodeRecord, now: float) -> Effects:
        """Replace this node's record (new capacity, labels, ...) and spread it.

        The version is raised above the current one whatever ``record`` says.
        """
        self._now = now
        if record.node_id != self.node_id:
            raise InvalidRequest(
                f"node {self.node_id} cannot publish a record of {record.node_id}",
                hint="a node publishes only its own record",
                component="Membership",
            )
        self._publish(replace(record, version=max(record.version, self._record.version + 1)))
        return self._flush()

    def preload(self, states: Iterable[MemberSnapshot], sender: str, now: float) -> Effects:
        """Merge a full state as if it had just been received from ``sender``, without
        re-broadcasting it: for a member restored from a saved member list, or a simulated
        cluster that starts warm. Records are verified as always."""
        self._now = now
        self._quiet = True
        try:
            self._merge(states, sender)
        finally:
            self._quiet = False
        return self._flush()

    def leave(self, now: float) -> Effects:
        """Say goodbye: publish a final "leaving" record and push it to several members now.

        After this the member only finishes spreading that record (keep ticking briefly).
        """
        self._now = now
        if self._left:
            return self._flush()
        self._publish(replace(self._record, version=self._record.version + 1, leaving=True))
        self._left = True
        for _ in range(2):
            self._gossip_round()
        return self._flush()

    # -- probing ---------------------------------------------------------------------------------

    def _start_probe(self) -> None:
        target = self._next_probe_target()
        if target is None:
            return
        s = self._settings
        scale = self._awareness + 1
        self._sequence += 1
        self._probe = _Probe(
            target=target.record.node_id,
            sequence=self._sequence,
            indirect_at=self._now + s.probe_timeout * scale,
            end_at=self._now + s.probe_interval * scale,
        )
        self.metrics.probes += 1
        updates = self._piggyback()
        if target.state is SUSPECT and target.suspicion is not None:
            # Tell a suspect it is suspected, so it can refute at once (Lifeguard's buddy
            # system) instead of waiting for the gossip to reach it.
            claim = Suspect(target.record.node_id, target.suspicion.incarnation, self.node_id)
            updates = (claim, *updates[: s.max_piggyback - 1])
        self._send_to_member(
            target, Ping(self._sequence, target.record.node_id, self._record.grpc_address, updates)
        )

    def _next_probe_target(self) -> Member | None:
        if self._confirm_target is not None:
            m = self._members.get(self._confirm_target)
            self._confirm_target = None
            if m is not None and m.state is SUSPECT:
                return m
        return self._members.next_to_probe()

    def _run_probe_timers(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        target = self._members.get(probe.target)
        if target is None or target.state.is_down():
            self._probe = None
            return
        if not probe.indirect_sent and now >= probe.indirect_at:
            probe.indirect_sent = True
            helpers = self._members.random(
                self._settings.indirect_checks, states=(ALIVE,), exclude=probe.target
            )
            request = PingReq(
                probe.sequence,
                probe.target,
                target.record.grpc_address,
                self._record.grpc_address,
            )
            for helper in helpers:
                probe.helpers.add(helper.record.node_id)
                self._send_to_member(helper, request)
        if probe.indirect_sent and now >= probe.end_at:
            self._probe = None
            self.metrics.probes_failed += 1
            # Lifeguard: missing nacks mean our own messages are not getting through, so this
            # node is the likely culprit and slows down; with no helpers at all, any failure
            # counts against us.
            expected = len(probe.helpers)
            self._adjust_awareness(expected - probe.nacks if expected else 1)
            self._suspect(probe.target, target.record.version, self.node_id)

    def _on_ack(self, sender: str, ack: Ack) -> None:
        probe = self._probe
        if probe is not None and probe.sequence == ack.sequence:
            if sender == probe.target or sender in probe.helpers:
                self._probe = None
                self._adjust_awareness(-1)
            return
        relay = self._relays.get(ack.sequence)
        if relay is not None and sender == relay.target:
            del self._relays[ack.sequence]
            self._send(relay.origin, relay.origin_address, Ack(relay.origin_sequence))

    def _on_ping_req(self, sender: str, request: PingReq) -> None:
        if request.target_node_id == self.node_id:
            self._send(sender, request.reply_address, Ack(request.sequence, self._piggyback()))
            return
        s = self._settings
        self._sequence += 1
        timeout = s.probe_timeout * (self._awareness + 1)
        self._relays[self._sequence] = _Relay(
            target=request.target_node_id,
            origin=sender,
            origin_sequence=request.sequence,
            origin_address=request.reply_address,
            nack_at=self._now + timeout * _NACK_SHARE,
            expires_at=self._now + s.probe_interval * (self._awareness + 1),
        )
        ping = Ping(self._sequence, request.target_node_id, self._record.grpc_address)
        self._send(request.target_node_id, request.target_address, ping)

    def _run_relay_timers(self, now: float) -> None:
        for sequence, relay in list(self._relays.items()):
            if now >= relay.expires_at:
                del self._relays[sequence]
            elif not relay.nacked and now >= relay.nack_at:
                relay.nacked = True
                self._send(relay.origin, relay.origin_address, Nack(relay.origin_sequence))
