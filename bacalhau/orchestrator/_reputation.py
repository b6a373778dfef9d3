"""Node reputation: each compute node's record of verified results, as this requester saw it.

The verifier (``schedulers/_verified``) decides, for every verified job, which replicas'
results were accepted; the planner adds one agreement or disagreement per node to the job
store (table ``node_reputation``) in the same transaction as the verdict. The score is
Laplace's rule of succession, (a + 1) / (a + d + 2) (:class:`~bacalhau.models.NodeReputation`):
0.5 for a node without a record. Ranking multiplies each node's score by it, so a node caught
disagreeing ranks below its peers for every job, and an operator's ``min_reputation`` makes
nodes below it unsuitable. A job without verification says nothing about a node's results, so
only verified jobs move the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bacalhau.models import NodeReputation, NodeState, NodeType, shallow_copy

__all__ = ["ReputationSource", "node_reputations", "with_reputation"]


class ReputationSource(Protocol):
    """Where the records are kept (the job store)."""

    def reputation_counts(self) -> dict[str, tuple[int, int]]: ...


def node_reputations(source: ReputationSource) -> dict[str, NodeReputation]:
    """Every recorded node's reputation."""
    return {
        node_id: NodeReputation(agreements=a, disagreements=d)
        for node_id, (a, d) in source.reputation_counts().items()
    }


def with_reputation(
    nodes: Sequence[NodeState], reputations: Mapping[str, NodeReputation]
) -> list[NodeState]:
    """The nodes with their reputation attached: every compute node gets its record, or a
    fresh one (score 0.5) when it has none yet, so that ranking treats them alike."""
    out: list[NodeState] = []
    for node in nodes:
        if node.info.node_type == NodeType.COMPUTE:
            # Field by field (``shallow_copy``): this runs for every node on every placement.
            node = shallow_copy(node)
            node.reputation = reputations.get(node.info.node_id, NodeReputation())
        out.append(node)
    return out
