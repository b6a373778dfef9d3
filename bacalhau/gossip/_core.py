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

This module holds :class:`Membership`'s entry points; the protocol lives in one part per
concern, each a class it is built on (each part calls only the ones below it):

- ``_probing``: direct and indirect probes, and the ping-reqs this node serves for others;
- ``_liveness``: records applied, suspicions raised and confirmed, deaths, refutations;
- ``_dissemination``: piggybacking, gossip rounds, full-state push-pull, joining;
- ``_state``: the fields they share, the read-only view, the buffer of effects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from bacalhau.errors import InvalidRequest
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
)
from bacalhau.gossip._probing import Probing
from bacalhau.gossip._record import NodeRecord
from bacalhau.models import LivenessState

DEAD = LivenessState.DEAD


class Membership(Probing):
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
        if self._seeds or self._members.count(DEAD):
            # (A node with seeds wakes every reconnect interval to check them: cheaper than
            # working out here, at every wake-up, which of them no member answers at.)
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
            if not self._needs_join():  # (else the join above went to every seed already)
                self._rejoin_seeds()
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
