"""The protocol core, one step at a time: messages in, messages and events out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bacalhau.errors import InvalidRequest
from bacalhau.gossip import (
    Ack,
    Dead,
    Gossip,
    GossipSettings,
    MemberEvent,
    MemberEventKind,
    Membership,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    SignedRecord,
    Suspect,
    signing_input,
)
from bacalhau.models import LivenessState, Resources
from tests.gossip.harness import CODEC, START_NS, identity, knowing, member, record, signed, to

A, B, C, D = (identity(n) for n in range(1, 5))


def test_a_node_joins_through_a_seed_address() -> None:
    seed = member(A)
    joiner = Membership(
        identity=B, record=record(B), codec=CODEC, seeds=[seed.local_record.grpc_address]
    )

    first = joiner.tick(0.0).messages
    [join] = [m for m in first if isinstance(m.message, PushPull)]
    assert join.node_id is None  # the seed's node ID is not known yet: only its address
    assert join.address == seed.local_record.grpc_address
    assert isinstance(join.message, PushPull) and join.message.join

    at_seed = seed.receive(B.node_id, join.message, 0.01)
    assert [(e.kind, e.member.node_id) for e in at_seed.events] == [
        (MemberEventKind.JOINED, B.node_id)
    ]
    [reply] = to(B.node_id, at_seed.messages)
    assert isinstance(reply.message, PushPull) and reply.message.reply
    assert reply.address == joiner.local_record.grpc_address

    at_joiner = joiner.receive(A.node_id, reply.message, 0.02)
    assert [e.member.node_id for e in at_joiner.events] == [A.node_id]
    assert joiner.member(A.node_id) is not None
    assert joiner.member(A.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]
    # Joined: no more join attempts, the reply is not answered again.
    assert not at_joiner.messages
    assert not [m for m in joiner.tick(5.0).messages if m.node_id is None]


def test_a_probe_is_a_ping_answered_by_an_ack() -> None:
    prober = knowing(member(A), signed(B))
    target = knowing(member(B), signed(A))

    [ping] = to(B.node_id, prober.tick(prober.next_wakeup()).messages)
    assert isinstance(ping.message, Ping) and ping.message.target_node_id == B.node_id
    [ack] = target.receive(A.node_id, ping.message, 0.6).messages
    assert isinstance(ack.message, Ack) and ack.message.sequence == ping.message.sequence
    assert ack.node_id == A.node_id and ack.address == ping.message.reply_address

    prober.receive(B.node_id, ack.message, 0.61)
    # Answered: no indirect probe, no suspicion, however long we wait.
    later = prober.tick(prober.next_wakeup())
    assert not [m for m in later.messages if isinstance(m.message, PingReq)]
    assert prober.metrics.probes_failed == 0
    assert prober.member(B.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]


def test_an_ack_from_a_third_node_does_not_count() -> None:
    prober = knowing(member(A), signed(B), signed(C))
    [ping] = [m for m in prober.tick(prober.next_wakeup()).messages if isinstance(m.message, Ping)]
    assert isinstance(ping.message, Ping)
    other = C if ping.node_id == B.node_id else B
    prober.receive(other.node_id, Ack(ping.message.sequence), 0.6)
    fx = prober.tick(prober.next_wakeup())
    assert [m for m in fx.messages if isinstance(m.message, PingReq)]


def test_a_silent_member_is_probed_indirectly_then_suspected_then_declared_dead() -> None:
    settings = GossipSettings()
    prober = knowing(member(A, settings=settings), signed(B), signed(C), signed(D))
    first = prober.tick(prober.next_wakeup())
    [ping] = [m for m in first.messages if isinstance(m.message, Ping)]
    target = ping.node_id
    assert target is not None

    # No ack within the probe timeout: the others are asked to probe.
    indirect = prober.tick(prober.next_wakeup()).messages
    requests = [m for m in indirect if isinstance(m.message, PingReq)]
    assert {m.node_id for m in requests} == {B.node_id, C.node_id, D.node_id} - {target}
    for helper in requests:
        assert helper.node_id is not None
        prober.receive(helper.node_id, Nack(ping.message.sequence), prober.next_wakeup())  # type: ignore[union-attr]

    # Nobody reached it by the end of the probe interval: suspect, and gossip it.
    fx = prober.tick(prober.next_wakeup())
    assert [(e.kind, e.member.node_id) for e in fx.events] == [(MemberEventKind.SUSPECT, target)]
    assert prober.awareness == 0  # every helper nacked: the network is fine, the target is not
    suspected_at = fx.events[0].member.since

    # Nobody confirms and the target does not refute: dead after the longest suspicion.
    events: list[MemberEvent] = []
    while not events:
        events = [e for e in prober.tick(prober.next_wakeup()).events if e.member.node_id == target]
    assert [e.kind for e in events] == [MemberEventKind.DEAD]
    _, high = settings.suspicion_bounds(4)
    assert events[0].member.since - suspected_at == pytest.approx(high)


def test_confirmations_shorten_the_suspicion() -> None:
    settings = GossipSettings(suspicion_confirmations=2)
    core = knowing(member(A, settings=settings), signed(B), signed(C), signed(D))
    core.receive(C.node_id, Gossip((Suspect(B.node_id, START_NS, C.node_id),)), 1.0)
    core.receive(D.node_id, Gossip((Suspect(B.node_id, START_NS, D.node_id),)), 1.1)
    # Two accusers at n=4 is one confirmation of the expected min(2, n-2) = 2.
    core.receive(C.node_id, Gossip((Suspect(B.node_id, START_NS, A.node_id),)), 1.2)
    low, _ = settings.suspicion_bounds(4)
    dead_at = None
    now = 1.2
    while dead_at is None:
        now = core.next_wakeup()
        if any(e.kind is MemberEventKind.DEAD for e in core.tick(now).events):
            dead_at = now
    assert dead_at == pytest.approx(1.0 + low)


def test_a_suspected_node_refutes_with_a_newer_record() -> None:
    suspect = knowing(member(B), signed(A))
    fx = suspect.receive(A.node_id, Gossip((Suspect(B.node_id, START_NS, C.node_id),)), 1.0)
    assert suspect.metrics.refutations == 1
    assert suspect.local_record.version > START_NS

    # The refutation travels like any update; an observer that suspected B believes it.
    observer = knowing(member(A), signed(B))
    observer.receive(C.node_id, Gossip((Suspect(B.node_id, START_NS, C.node_id),)), 1.0)
    assert observer.member(B.node_id).state is LivenessState.SUSPECT  # type: ignore[union-attr]
    # It spreads the newer record like any update.
    carried = [
        u
        for m in fx.messages + suspect.tick(suspect.next_wakeup()).messages
        if isinstance(m.message, Ping | Gossip)
        for u in m.message.updates
    ]
    update = suspect.signed_record
    assert update in carried
    events = observer.receive(B.node_id, Gossip((update,)), 1.1).events
    assert [(e.kind, e.previous) for e in events] == [
        (MemberEventKind.ALIVE, LivenessState.SUSPECT)
    ]
    # And the old suspicion can no longer touch it.
    observer.receive(C.node_id, Gossip((Suspect(B.node_id, START_NS, C.node_id),)), 1.2)
    assert observer.member(B.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]


def test_a_peer_cannot_revive_a_dead_member_only_its_newer_record_can() -> None:
    core = knowing(member(A), signed(B), signed(C))
    core.receive(C.node_id, Gossip((Dead(B.node_id, START_NS, C.node_id),)), 1.0)
    assert core.member(B.node_id).state is LivenessState.DEAD  # type: ignore[union-attr]
    # The same record again (replayed by anyone) changes nothing.
    assert not core.receive(C.node_id, Gossip((signed(B),)), 1.1).events
    assert core.member(B.node_id).state is LivenessState.DEAD  # type: ignore[union-attr]
    events = core.receive(C.node_id, Gossip((signed(B, START_NS + 5),)), 1.2).events
    assert [(e.kind, e.previous) for e in events] == [(MemberEventKind.ALIVE, LivenessState.DEAD)]


def test_a_member_that_leaves_is_left_not_dead() -> None:
    leaver = knowing(member(B), signed(A))
    fx = leaver.leave(2.0)
    [goodbye] = {m.message for m in fx.messages}
    assert isinstance(goodbye, Gossip)
    observer = knowing(member(A), signed(B))
    events = observer.receive(B.node_id, goodbye, 2.01).events
    assert [(e.kind, e.member.record.leaving) for e in events] == [(MemberEventKind.LEFT, True)]
    # A left member is never probed, so never suspected.
    for _ in range(20):
        for m in observer.tick(observer.next_wakeup()).messages:
            assert m.node_id != B.node_id
    # A peer's claim cannot turn it into dead either.
    observer.receive(C.node_id, Gossip((Dead(B.node_id, START_NS + 1, C.node_id),)), 30.0)
    assert observer.member(B.node_id).state is LivenessState.LEFT  # type: ignore[union-attr]


def test_stale_forged_and_misattributed_records_are_rejected_and_counted() -> None:
    core = knowing(member(A), signed(B, START_NS + 10))
    before = core.member(B.node_id)

    # Stale: an older record of B (a replay) is never applied.
    core.receive(C.node_id, Gossip((signed(B, START_NS + 3),)), 1.0)
    # Forged: a newer version with B's old signature.
    genuine = signed(B, START_NS + 10)
    tampered = CODEC.encode(record(B, START_NS + 11, available_capacity=Resources(cpu=64)))
    forged = SignedRecord(B.node_id, START_NS + 11, tampered, genuine.signature)
    core.receive(C.node_id, Gossip((forged,)), 1.1)
    # Misattributed: C signs a record that says it is B's.
    payload = CODEC.encode(record(B, START_NS + 12))
    by_c = SignedRecord(
        C.node_id, START_NS + 12, payload, C.sign(signing_input(CODEC.type_name, payload))
    )
    claims_b = SignedRecord(B.node_id, START_NS + 12, payload, by_c.signature)
    core.receive(C.node_id, Gossip((by_c, claims_b)), 1.2)
    # Malformed: B really signed it, but it is not a record.
    junk = b"\xff\xff\xff"
    core.receive(
        C.node_id,
        Gossip(
            (
                SignedRecord(
                    B.node_id, START_NS + 13, junk, B.sign(signing_input(CODEC.type_name, junk))
                ),
            )
        ),
        1.3,
    )

    m = core.metrics
    assert (
        m.rejected_stale,
        m.rejected_bad_signature,
        m.rejected_wrong_node,
        m.rejected_malformed,
    ) == (1, 2, 1, 1)
    assert core.member(B.node_id) == before
    assert core.member(C.node_id) is None


def test_a_newer_record_updates_the_member_and_is_passed_on() -> None:
    core = knowing(member(A), signed(B), signed(C))
    newer = signed(B, START_NS + 1, available_capacity=Resources(cpu=0.5))
    events = core.receive(B.node_id, Gossip((newer,)), 1.0).events
    assert [(e.kind, e.member.record.available_capacity.cpu) for e in events] == [
        (MemberEventKind.UPDATED, 0.5)
    ]
    assert core.metrics.records_applied >= 1
    carried = [
        u
        for m in core.tick(core.next_wakeup()).messages
        if isinstance(m.message, Ping | Gossip)
        for u in m.message.updates
    ]
    assert newer in carried


def test_publish_raises_the_version_and_signs() -> None:
    core = member(A)
    old = core.local_record.version
    core.publish(replace(core.local_record, labels={"gpu": "yes"}), 1.0)
    assert core.local_record.version == old + 1
    assert core.signed_record.version == old + 1
    with pytest.raises(InvalidRequest):
        core.publish(record(B), 1.0)


def test_a_ping_req_is_relayed_or_nacked() -> None:
    helper = knowing(member(C), signed(A), signed(B))
    request = PingReq(7, B.node_id, "b-address:1", "a-address:1")
    [ping] = helper.receive(A.node_id, request, 1.0).messages
    assert isinstance(ping.message, Ping)
    assert (ping.node_id, ping.address) == (B.node_id, "b-address:1")
    # The target answers: the ack goes back to the origin under the origin's sequence.
    [relayed] = helper.receive(B.node_id, Ack(ping.message.sequence), 1.05).messages
    assert (relayed.node_id, relayed.address, relayed.message) == (A.node_id, "a-address:1", Ack(7))

    # Another request, unanswered: a nack reaches the origin within the probe timeout, so
    # before the end of the origin's probe interval.
    helper.receive(A.node_id, PingReq(8, B.node_id, "b-address:1", "a-address:1"), 2.0)
    nacks: list[tuple[str | None, Message]] = []
    while not nacks:
        now = helper.next_wakeup()
        fx = helper.tick(now)
        nacks = [(m.node_id, m.message) for m in fx.messages if isinstance(m.message, Nack)]
    assert nacks == [(A.node_id, Nack(8))]
    assert 2.0 < now <= 2.0 + helper.settings.probe_timeout
