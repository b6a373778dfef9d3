"""Suspicions and deaths are unsigned claims any member may send: none may put a member out
of reach of its own refutation (a version nobody published, 2**64 - 1, would)."""

from __future__ import annotations

from bacalhau.gossip import Dead, Gossip, Suspect
from bacalhau.models import LivenessState
from tests.gossip.harness import START_NS, identity, knowing, member, signed

A, B, C = (identity(n) for n in range(1, 4))
NEVER_PUBLISHED = 2**64 - 1


def test_a_claim_about_this_node_past_its_record_is_refuted_and_the_node_stays_usable() -> None:
    victim = knowing(member(B), signed(A))
    for claim in (Dead, Suspect):
        version = victim.local_record.version
        victim.receive(A.node_id, Gossip((claim(B.node_id, NEVER_PUBLISHED, A.node_id),)), 1.0)
        # Refuted just past its own record, which still seals and goes out.
        assert victim.local_record.version == version + 1
        assert victim.signed_record.version == version + 1
    assert victim.metrics.refutations == 2


def test_a_death_claimed_past_the_record_held_is_undone_by_the_members_next_record() -> None:
    observer = knowing(member(A), signed(B), signed(C))
    observer.receive(C.node_id, Gossip((Dead(B.node_id, NEVER_PUBLISHED, C.node_id),)), 1.0)
    assert observer.member(B.node_id).state is LivenessState.DEAD  # type: ignore[union-attr]
    # B's refutation (its next record) revives it: the claim counted for the record held.
    revived = observer.receive(C.node_id, Gossip((signed(B, START_NS + 1),)), 1.1)
    assert observer.member(B.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]
    assert revived.events


def test_a_suspicion_claimed_past_the_record_held_is_cleared_by_the_members_next_record() -> None:
    observer = knowing(member(A), signed(B), signed(C))
    observer.receive(C.node_id, Gossip((Suspect(B.node_id, NEVER_PUBLISHED, C.node_id),)), 1.0)
    assert observer.member(B.node_id).state is LivenessState.SUSPECT  # type: ignore[union-attr]
    observer.receive(C.node_id, Gossip((signed(B, START_NS + 1),)), 1.1)
    assert observer.member(B.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]


def test_a_member_accusing_itself_is_ignored() -> None:
    observer = knowing(member(A), signed(B))
    victim = knowing(member(B), signed(A))
    version = victim.local_record.version
    for claim in (Dead, Suspect):
        observer.receive(B.node_id, Gossip((claim(B.node_id, START_NS, B.node_id),)), 1.0)
        victim.receive(A.node_id, Gossip((claim(B.node_id, version, B.node_id),)), 1.0)
    assert observer.member(B.node_id).state is LivenessState.ALIVE  # type: ignore[union-attr]
    assert victim.metrics.refutations == 0
