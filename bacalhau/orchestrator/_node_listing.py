"""The compute nodes one scheduling pass sees, listed only when the pass needs them all.

Most passes place nothing: the pass that follows an execution's end finds the job complete,
the one that follows a bid finds it running. They look only at the nodes the job's
executions are on (is the node still there, is it approved), so building every node's state
for them is work that grows with the cluster for nothing. A :class:`NodeListing` answers
those questions node by node (:func:`node_lookup`) and builds the whole list the first time
something iterates it: ranking, for a placement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import overload

from bacalhau.models import NodeState

__all__ = ["NodeListing", "node_lookup"]


class NodeListing(Sequence[NodeState]):
    """A sequence of node states built by ``listing`` on first use; :meth:`get` finds one
    node through ``lookup`` until then. ``lookup(node_id)`` must give the state ``listing``
    would hold for that node, and None for a node it would not hold."""

    def __init__(
        self,
        listing: Callable[[], Sequence[NodeState]],
        lookup: Callable[[str], NodeState | None],
    ) -> None:
        self._listing = listing
        self._lookup = lookup
        self._nodes: Sequence[NodeState] | None = None
        self._by_id: dict[str, NodeState | None] = {}

    def get(self, node_id: str) -> NodeState | None:
        """The state of node ``node_id`` (None: not among these nodes)."""
        if self._nodes is None and node_id not in self._by_id:
            self._by_id[node_id] = self._lookup(node_id)
        # Once listed, the map holds every node listed: any other is not among them.
        return self._by_id.get(node_id)

    def _all(self) -> Sequence[NodeState]:
        if self._nodes is None:
            self._nodes = self._listing()
            # What was looked up before must be what the list holds from now on.
            self._by_id = {n.info.node_id: n for n in self._nodes}
        return self._nodes

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> NodeState: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NodeState]: ...

    def __getitem__(self, index: int | slice) -> NodeState | Sequence[NodeState]:
        return self._all()[index]

    def __iter__(self) -> Iterator[NodeState]:
        return iter(self._all())


def node_lookup(nodes: Sequence[NodeState]) -> Callable[[str], NodeState | None]:
    """Find a node of ``nodes`` by ID: without listing them all when they are a
    :class:`NodeListing`, through a map of them otherwise."""
    if isinstance(nodes, NodeListing):
        return nodes.get
    by_id = {n.info.node_id: n for n in nodes}
    return by_id.get
