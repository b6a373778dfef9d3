"""Spreading updates: piggybacking, gossip rounds, full-state push-pull, joining.

Updates (records, suspicions, deaths) wait in the broadcast queue and ride on pings and acks,
and on gossip pushed to a few random members every gossip interval, each sent a bounded number
of times. A periodic push-pull of the whole member list with one random alive member repairs
whatever gossip missed; the same exchange sent to the seeds, while no member is alive, is how
a node joins, and sent now and then to a dead member, how a healed partition is noticed.

A seed no alive member answers at (a requester that left and started again, with the compute
nodes still alive to each other) is sent that exchange now and then too: a member that left
is otherwise never contacted again, and the seed would stay out of the cluster. A seed named
by another address than the one its member advertises (a host name) is sent it as well, at
the same slow pace: one message per seed every ``reconnect_interval``.
"""

from __future__ import annotations

from bacalhau.gossip._messages import Gossip, MemberSnapshot, PushPull, Update
from bacalhau.gossip._state import MembershipState
from bacalhau.models import LivenessState

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT
DEAD = LivenessState.DEAD
LEFT = LivenessState.LEFT


class Dissemination(MembershipState):
    """Sends what the broadcast queue holds, and the full member list, to other members."""

    def _piggyback(self) -> tuple[Update, ...]:
        s = self._settings
        return self._broadcasts.take(s.max_piggyback, s.retransmit_limit(self.live_count()))

    def _gossip_round(self) -> None:
        s = self._settings
        horizon = self._now - s.gossip_to_dead_seconds
        targets = self._members.random(s.gossip_fanout, states=(ALIVE, SUSPECT), dead_since=horizon)
        for target in targets:
            updates = self._piggyback()
            if not updates:
                break
            self._send_to_member(target, Gossip(updates))

    def _push_pull_message(self, *, reply: bool, join: bool = False) -> PushPull:
        own = LEFT if self._left else ALIVE
        states = [MemberSnapshot(self._signed, own, self._record.version)]
        for m in self._members:
            if m.state is SUSPECT and m.suspicion is not None:
                incarnation = m.suspicion.incarnation
            elif m.state is DEAD:
                incarnation = m.dead_incarnation
            else:
                incarnation = m.record.version
            states.append(MemberSnapshot(m.signed, m.state, incarnation))
        return PushPull(tuple(states), self._record.grpc_address, join=join, reply=reply)

    def _push_pull_round(self) -> None:
        targets = self._members.random(1, states=(ALIVE,))
        if targets:
            self._send_to_member(targets[0], self._push_pull_message(reply=False))

    def _reconnect_round(self) -> None:
        for target in self._members.random(1, states=(DEAD,)):
            self._send_to_member(target, self._push_pull_message(reply=False))

    def _needs_join(self) -> bool:
        return bool(self._seeds) and not self._members.count(ALIVE)

    def _unreached_seeds(self) -> list[str]:
        """The seeds whose address no alive member advertises."""
        if not self._seeds:
            return []
        alive = {m.record.grpc_address for m in self._members if m.state is ALIVE}
        return [seed for seed in self._seeds if seed not in alive]

    def _rejoin_seeds(self) -> None:
        seeds = self._unreached_seeds()
        if seeds:
            message = self._push_pull_message(reply=False, join=True)
            for address in seeds:
                self._send(None, address, message)

    def _join_seeds(self) -> None:
        message = self._push_pull_message(reply=False, join=True)
        for address in self._seeds:
            self._send(None, address, message)
