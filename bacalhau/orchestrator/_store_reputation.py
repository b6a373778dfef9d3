"""The job store's node reputation: per compute node, how often its verified results agreed or
disagreed with the accepted ones (read by ``orchestrator._reputation``)."""

from __future__ import annotations

from collections.abc import Mapping

from bacalhau.models import now_ns
from bacalhau.orchestrator._store_transactions import StoreTransactions


class NodeReputationCounts(StoreTransactions):
    """Agreement and disagreement counts per node, kept in memory as the table holds them
    (read on every ranking; one row per node that ever ran a verified job)."""

    #: Node ID -> (agreements, disagreements) as written (undone with a rolled-back write).
    _reputation: dict[str, tuple[int, int]]

    def _load_reputation(self) -> None:
        self._reputation = {
            str(r[0]): (int(r[1]), int(r[2]))
            for r in self._db.execute(
                "SELECT node_id, agreements, disagreements FROM node_reputation"
            )
        }

    def record_verdicts(self, agreed: Mapping[str, bool]) -> None:
        """Add one agreement (True) or disagreement (False) per node, in the caller's
        transaction when there is one (a verification plan's)."""
        now = now_ns()
        with self._atomic():
            for node_id, agrees in agreed.items():
                self._db.execute(
                    "INSERT INTO node_reputation (node_id, agreements, disagreements,"
                    " modify_time) VALUES (?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET"
                    " agreements = agreements + excluded.agreements,"
                    " disagreements = disagreements + excluded.disagreements,"
                    " modify_time = excluded.modify_time",
                    (node_id, int(agrees), int(not agrees), now),
                )
                a, d = self._reputation.get(node_id, (0, 0))
                self._cache(self._reputation, node_id, (a + agrees, d + (not agrees)))

    def reputation_counts(self) -> dict[str, tuple[int, int]]:
        """Per node with a record: (agreements, disagreements)."""
        return dict(self._reputation)

    def reputation_of(self, node_id: str) -> tuple[int, int] | None:
        """One node's (agreements, disagreements); None: it has no record."""
        return self._reputation.get(node_id)
