"""Failure detection by probing: direct pings, ping-req through helpers, nacks.

Each probe interval one member (round-robin, or a suspect out of turn) gets a direct ping;
without an ack within the probe timeout, ``indirect_checks`` alive members are asked to ping
it for this node (:class:`PingReq`) and to nack if they get no answer either; without an ack
by the end of the interval the member becomes suspect. This node serves other members'
ping-reqs the same way (relays). Probes that fail without nacks count against this node's own
health (Lifeguard), which stretches its probe timing.
"""

from __future__ import annotations

from bacalhau.gossip._liveness import Liveness
from bacalhau.gossip._members import Member
from bacalhau.gossip._messages import Ack, Nack, Ping, PingReq, Suspect
from bacalhau.gossip._state import _Probe, _Relay
from bacalhau.models import LivenessState

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT

#: A ping-req helper nacks after this share of its own probe timeout, so the nack reaches the
#: prober before the end of its probe interval.
_NACK_SHARE = 0.8


class Probing(Liveness):
    """Probes members and serves other members' ping-reqs."""

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
