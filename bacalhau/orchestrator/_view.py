"""How the orchestrator reads the cluster: the :class:`NodeView` Protocol it declares.

The orchestrator never owns membership. Which nodes exist, what they offer and whether they
are reachable comes from a :class:`NodeView` that ``node/`` injects (gossip-backed in a real
node). The requester adds only what is the operator's business on top of it (approval, see
:class:`~bacalhau.orchestrator.NodeDirectory`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bacalhau.models import LivenessState, NodeInfo, NodeType


@dataclass(frozen=True, slots=True)
class NodeSighting:
    """A node as the cluster view sees it now."""

    #: What the node says about itself (its latest record).
    info: NodeInfo
    roles: frozenset[NodeType]
    liveness: LivenessState
    #: The record's version: grows with every change, and a restarted node starts higher.
    version: int
    #: Unix ns when the node was last known alive (now for a live node; 0: unknown).
    last_seen_ns: int = 0
    #: Where the node is reached, by service ("GRPC", "API", "Publisher").
    addresses: Mapping[str, str] = field(default_factory=dict)
    #: The node's own health summary ("healthy", or what is wrong).
    health: str = ""

    @property
    def node_id(self) -> str:
        return self.info.node_id

    @property
    def is_compute(self) -> bool:
        return NodeType.COMPUTE in self.roles


class NodeChangeKind(StrEnum):
    #: Seen for the first time.
    JOINED = "joined"
    #: A newer record of a live node (capacity, labels, ...).
    UPDATED = "updated"
    SUSPECT = "suspect"
    #: Back to alive: a suspicion refuted, or a dead or departed node returned.
    ALIVE = "alive"
    DEAD = "dead"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class NodeChange:
    kind: NodeChangeKind
    node: NodeSighting
    #: The liveness before this change (None for a node seen for the first time).
    previous: LivenessState | None = None


NodeObserver = Callable[[NodeChange], Awaitable[None]]


class NodeView(Protocol):
    """The cluster as one node sees it (this node included)."""

    def get(self, node_id: str) -> NodeSighting | None:
        """One node by its full ID, or None if unknown."""
        ...

    def all_nodes(self) -> list[NodeSighting]:
        """Every known node, dead and departed ones included until they are forgotten."""
        ...

    def compute_nodes(self) -> list[NodeSighting]:
        """Every known node with the compute role."""
        ...

    def subscribe(self, observer: NodeObserver) -> Callable[[], None]:
        """Call ``observer`` for every change, one at a time and in order; returns the
        unsubscribe function."""
        ...
