"""Counters a member keeps about the protocol, for the node's metrics and ``agent`` output."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bacalhau.gossip._record import Rejection


@dataclass(slots=True)
class GossipMetrics:
    #: Newer records verified and applied.
    records_applied: int = 0
    #: Records older than the one already held (replays, slow gossip); never applied.
    rejected_stale: int = 0
    #: Records whose signature does not verify for the node they name (forgeries).
    rejected_bad_signature: int = 0
    #: Records signed by one node about another node ID.
    rejected_wrong_node: int = 0
    #: Records that verify but do not parse or contradict their hints.
    rejected_malformed: int = 0
    #: Suspicions of other members this node started or first heard of.
    suspicions: int = 0
    #: Members this node saw declared dead.
    deaths: int = 0
    #: Times this node had to refute a suspicion or death of itself.
    refutations: int = 0
    #: Records of this node's ID, newer than its own, from another address: another process
    #: runs with this node's identity (a copied data dir), or an earlier run moved.
    identity_conflicts: int = 0
    probes: int = 0
    probes_failed: int = 0
    messages_received: int = 0
    messages_sent: int = 0

    def count_rejection(self, why: Rejection) -> None:
        if why is Rejection.STALE:
            self.rejected_stale += 1
        elif why is Rejection.BAD_SIGNATURE:
            self.rejected_bad_signature += 1
        elif why is Rejection.WRONG_NODE:
            self.rejected_wrong_node += 1
        else:
            self.rejected_malformed += 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
