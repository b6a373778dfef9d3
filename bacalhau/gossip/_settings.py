"""The membership protocol's tunables, frozen, with defaults chosen for a LAN.

HashiCorp memberlist's LAN profile (probe every 1 s, 500 ms probe timeout, suspicion
multiplier 4, push-pull every 30 s) detects a dead node in about 10-14 s and spreads a record
in about 2 s. Our clusters are LAN-like (a data centre or one machine), where a healthy peer
answers in well under a millisecond, so the defaults below are tighter. In the simulated
cluster of ``bench/membership.py`` (0.5-1 ms latency) a killed node is dead at every member
after about 2.5 s (at most about 3.5 s over its trials) at 50 to 500 nodes, a new record
reaches all 200 or 500 members in about 0.2 s, and 200 members with 5% packet loss see no
false death in a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bacalhau.errors import InvalidConfiguration


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipSettings:
    """Timing and fan-out of the SWIM/Lifeguard protocol (seconds unless named otherwise)."""

    #: One member is probed per interval, round-robin over a shuffled list. 0.5 s (memberlist:
    #: 1 s) halves the time until some member probes a dead one; the load stays tiny (one ping
    #: and one ack per member per interval, whatever the cluster size).
    probe_interval: float = 0.5
    #: How long a direct ping waits before asking others to probe. A LAN round trip is under a
    #: millisecond; 0.2 s leaves room for a busy Python process and a TLS reconnect.
    probe_timeout: float = 0.2
    #: Members asked to probe indirectly (ping-req) when the direct probe times out. Three
    #: independent paths make a lost packet (or one bad link) almost never look like a failure.
    indirect_checks: int = 3
    #: Suspicion lasts ``suspicion_mult * log10(n) * probe_interval`` at least (Lifeguard's
    #: minimum, reached once ``suspicion_confirmations`` other members suspect the node too) and
    #: ``suspicion_max_mult`` times that at most (a lone suspicion, which is usually a lost
    #: packet or a slow suspecter: it leaves the suspect plenty of time to refute). memberlist
    #: uses 4 and 6 with a 1 s interval: 9 s to 55 s at 200 nodes. Here 1.15 s to 6.9 s: a
    #: suspect hears of its suspicion within milliseconds on a LAN (it is told directly by the
    #: next member that probes it, and gossip reaches everyone in a few hops), so even the
    #: minimum leaves a live member ample time to refute, while a real failure is confirmed
    #: by several members within a probe interval and dies at the minimum.
    suspicion_mult: float = 1.0
    suspicion_max_mult: float = 6.0
    #: Independent suspicions that bring the timeout down to its minimum.
    suspicion_confirmations: int = 3
    #: A floor under the suspicion timeout (tiny clusters, where log10(n) < 1).
    suspicion_min_seconds: float = 1.0
    #: Each update is piggybacked ``retransmit_mult * ceil(log10(n + 1))`` times (SWIM's
    #: lambda * log n), enough for an epidemic to reach everyone with high probability.
    retransmit_mult: int = 4
    #: Updates are also pushed to ``gossip_fanout`` random members every ``gossip_interval``
    #: while there are any (memberlist: 200 ms, 3): dissemination does not wait for probes.
    #: A member whose gossip timer is idle sends news at once, so an update crosses the
    #: cluster in a few network hops; the interval only caps each member's rate.
    gossip_interval: float = 0.1
    gossip_fanout: int = 3
    #: Updates carried by one message at most.
    max_piggyback: int = 16
    #: Full-state exchange with one random member (anti-entropy; memberlist LAN: 30 s).
    push_pull_interval: float = 10.0
    #: Retry joining through the seeds this often while no other member is alive.
    join_retry_interval: float = 1.0
    #: Try a full-state exchange with one dead member this often, so that the two sides of a
    #: healed partition find each other again.
    reconnect_interval: float = 5.0
    #: Keep gossiping to a member this long after it is declared dead (it may only be cut
    #: off; hearing of its death lets it refute at once when the link returns).
    gossip_to_dead_seconds: float = 5.0
    #: Forget a dead or departed member's record after this long (its version is kept, so an
    #: old copy of the record can never bring it back).
    reap_after_seconds: float = 300.0
    #: Lifeguard's local health multiplier: probe interval and timeout stretch up to
    #: ``awareness_max`` times while this node's own probes keep failing (it is probably the
    #: slow one, and should not accuse others).
    awareness_max: int = 8

    def __post_init__(self) -> None:
        positive = {
            "probe_interval": self.probe_interval,
            "probe_timeout": self.probe_timeout,
            "suspicion_mult": self.suspicion_mult,
            "gossip_interval": self.gossip_interval,
            "push_pull_interval": self.push_pull_interval,
            "join_retry_interval": self.join_retry_interval,
            "reconnect_interval": self.reconnect_interval,
        }
        for name, value in positive.items():
            if not value > 0:
                raise InvalidConfiguration(f"gossip {name} must be positive, not {value}")
        if self.probe_timeout >= self.probe_interval:
            raise InvalidConfiguration(
                "gossip probe_timeout must be shorter than probe_interval",
                hint="the indirect probe runs in the rest of the probe interval",
            )
        if self.suspicion_max_mult < 1:
            raise InvalidConfiguration("gossip suspicion_max_mult must be at least 1")
        counts = {
            "indirect_checks": self.indirect_checks,
            "suspicion_confirmations": self.suspicion_confirmations,
            "retransmit_mult": self.retransmit_mult,
            "gossip_fanout": self.gossip_fanout,
            "max_piggyback": self.max_piggyback,
            "awareness_max": self.awareness_max,
        }
        for name, count in counts.items():
            if count < 1:
                raise InvalidConfiguration(f"gossip {name} must be at least 1, not {count}")

    def retransmit_limit(self, members: int) -> int:
        """How many times one update is sent, for a cluster of ``members``."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(members + 1)))

    def suspicion_bounds(self, members: int) -> tuple[float, float]:
        """(minimum, maximum) suspicion timeout for a cluster of ``members``."""
        low = max(
            self.suspicion_min_seconds,
            self.suspicion_mult * max(1.0, math.log10(max(members, 1))) * self.probe_interval,
        )
        return low, low * self.suspicion_max_mult
