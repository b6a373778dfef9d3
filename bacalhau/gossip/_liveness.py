"""How members' liveness changes: records applied, suspicions raised and confirmed, deaths
declared, and this node's refutations.

A newer, authentic record makes its member alive (or left, if it says it is leaving) and
clears a suspicion about an older version; a suspicion starts Lifeguard's shrinking timeout
(:class:`~bacalhau.gossip._members.Suspicion`), which each independent confirmation
shortens; a death stands until the member publishes a newer record. Suspicions and deaths
about this node itself are refuted by publishing a newer record.

Suspicions and deaths are not signed: any member may send them. So a claim counts for no
more than the newest record the receiver holds of its member (its own, for a claim about
itself): only the member can sign a newer one. A member that claimed a version nobody
published (say 2**64 - 1) would otherwise have its victim declared dead at a version no
refutation can pass, for good. A claim a member makes about itself is ignored: nobody
accuses itself. Every change is checked
against the liveness transitions of :mod:`bacalhau.models` and reported as a
:class:`MemberEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from bacalhau.gossip._dissemination import Dissemination
from bacalhau.gossip._members import Member, Suspicion
from bacalhau.gossip._messages import (
    Dead,
    MemberEvent,
    MemberEventKind,
    MemberSnapshot,
    Suspect,
    Update,
)
from bacalhau.gossip._record import NodeRecord, Rejection, SignedRecord, seal_record
from bacalhau.models import LivenessState, check_liveness_transition

ALIVE = LivenessState.ALIVE
SUSPECT = LivenessState.SUSPECT
DEAD = LivenessState.DEAD
LEFT = LivenessState.LEFT


class Liveness(Dissemination):
    """Applies records, suspicions and deaths to the member table, and refutes claims about
    this node."""

    # -- suspicion and death ---------------------------------------------------------------------

    def _suspect(self, node_id: str, incarnation: int, accuser: str) -> None:
        if accuser == node_id:
            return
        if node_id == self.node_id:
            self._refute(min(incarnation, self._record.version))
            return
        m = self._members.get(node_id)
        if m is None or m.state.is_down() or incarnation < m.record.version:
            return
        incarnation = m.record.version  # (see the module: no claim goes past the record)
        if m.state is SUSPECT:
            assert m.suspicion is not None
            if m.suspicion.confirm(accuser):
                # Pass confirmations on: they shorten everyone's timeout.
                self._broadcasts.put(node_id, Suspect(node_id, incarnation, accuser))
            return
        check_liveness_transition(m.state, SUSPECT, newer_record=False)
        previous = m.state
        low, high = self._settings.suspicion_bounds(self.live_count())
        expected = min(self._settings.suspicion_confirmations, self.live_count() - 2)
        m.suspicion = Suspicion(incarnation, self._now, low, high, expected, {accuser})
        self._suspects[node_id] = m.suspicion
        self._set_state(m, SUSPECT, MemberEventKind.SUSPECT, previous)
        self.metrics.suspicions += 1
        if accuser != self.node_id and self._rng.random() < 2 * (expected + 1) / self.live_count():
            # Lifeguard shortens a suspicion once independent members confirm it, but with
            # round-robin probing one member is probed by someone only about once per probe
            # interval. So about ``2 * (expected + 1)`` of the members who hear of a suspicion
            # probe the suspect next, out of turn: a dead member is confirmed within a probe
            # interval, a live one simply answers them (a handful of extra pings).
            self._confirm_target = node_id
        self._broadcasts.put(node_id, Suspect(node_id, incarnation, accuser))

    def _declare_dead(self, node_id: str, incarnation: int, accuser: str) -> None:
        if accuser == node_id:
            return
        if node_id == self.node_id:
            self._refute(min(incarnation, self._record.version))
            return
        m = self._members.get(node_id)
        if m is None or m.state.is_down() or incarnation < m.record.version:
            return
        incarnation = m.record.version  # (see the module: no claim goes past the record)
        check_liveness_transition(m.state, DEAD, newer_record=False)
        previous = m.state
        self._clear_suspicion(m)
        m.dead_incarnation = incarnation
        self._set_state(m, DEAD, MemberEventKind.DEAD, previous)
        self.metrics.deaths += 1
        self._broadcasts.put(node_id, Dead(node_id, incarnation, accuser))

    def _refute(self, incarnation: int) -> None:
        """Publish a record newer than a claim about this node (or than a record an earlier
        run of it signed, ``incarnation``). An unsigned claim of a version this node never
        published counts as one about its current record: the earlier run's record, which
        members holding it also send, is what moves this node past it."""
        if self._left or incarnation < self._record.version:
            return
        self.metrics.refutations += 1
        # Being suspected hints that this node is the slow one (Lifeguard).
        self._adjust_awareness(1)
        self._publish(replace(self._record, version=max(self._record.version, incarnation) + 1))

    def _clear_suspicion(self, m: Member) -> None:
        m.suspicion = None
        self._suspects.pop(m.record.node_id, None)

    # -- records ---------------------------------------------------------------------------------

    def _publish(self, record: NodeRecord) -> None:
        # Sealed first: a record that cannot be sealed must not become this node's.
        self._signed = seal_record(self._identity, self._codec, record)
        self._record = record
        self._broadcasts.put(self.node_id, self._signed)

    def _apply_record(self, signed: SignedRecord) -> None:
        node_id = signed.node_id
        if node_id == self.node_id:
            if signed.version > self._record.version and not self._left:
                # An earlier run of this node published later versions (its clock was ahead):
                # jump past them, or peers would keep preferring the old record.
                opened = self._verifier.open(signed)
                if isinstance(opened, NodeRecord):
                    if opened.grpc_address and opened.grpc_address != self._record.grpc_address:
                        self.metrics.identity_conflicts += 1
                        self.conflicting_address = opened.grpc_address
                    self._refute(signed.version)
            return
        m = self._members.get(node_id)
        known = self._members.known_version(node_id)
        if signed.version <= known:
            if signed.version < known:
                self.metrics.count_rejection(Rejection.STALE)
            return
        opened = self._verifier.open(signed)
        if isinstance(opened, Rejection):
            self.metrics.count_rejection(opened)
            return
        record = opened
        self.metrics.records_applied += 1
        if not self._quiet:
            self._broadcasts.put(node_id, signed)
        state = LEFT if record.leaving else ALIVE
        if m is None:
            m = Member(record, signed, state, self._now)
            self._members.add(m)
            kind = MemberEventKind.JOINED if state is ALIVE else MemberEventKind.LEFT
            self._event(MemberEvent(kind, m.info(), None))
            return
        previous = m.state
        m.record, m.signed = record, signed
        if (
            previous is SUSPECT
            and m.suspicion is not None
            and (m.suspicion.incarnation >= record.version and state is ALIVE)
        ):
            # A suspicion about a version newer than this record still stands.
            self._event(MemberEvent(MemberEventKind.UPDATED, m.info(), previous))
            return
        check_liveness_transition(previous, state, newer_record=True)
        self._clear_suspicion(m)
        if state is previous:
            kind = MemberEventKind.UPDATED
        elif state is LEFT:
            kind = MemberEventKind.LEFT
        else:
            kind = MemberEventKind.ALIVE
        self._set_state(m, state, kind, previous)

    def _apply_updates(self, updates: Iterable[Update], sender: str) -> None:
        for update in updates:
            if isinstance(update, SignedRecord):
                self._apply_record(update)
            elif isinstance(update, Suspect):
                self._suspect(update.node_id, update.incarnation, update.accuser)
            else:
                self._declare_dead(update.node_id, update.incarnation, update.accuser)

    def _merge(self, states: Iterable[MemberSnapshot], sender: str) -> None:
        for snap in states:
            self._apply_record(snap.record)
            if snap.state in (SUSPECT, DEAD):
                # Like memberlist, a death heard in a full-state exchange only makes the
                # member suspect here: it gets its own chance to refute.
                self._suspect(snap.record.node_id, snap.incarnation, sender)

    def _set_state(
        self,
        m: Member,
        state: LivenessState,
        kind: MemberEventKind,
        previous: LivenessState,
    ) -> None:
        self._members.set_state(m, state, self._now)
        self._event(MemberEvent(kind, m.info(), previous))
