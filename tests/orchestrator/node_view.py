"""A cluster view the test changes by hand (the orchestrator's NodeView, without gossip).

Nodes join, publish newer records, are suspected, die, leave and come back exactly when the
test says so; every change reaches the orchestrator's observer before the call returns.
The gossip-backed view is tested with real members in tests/node/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from bacalhau.models import ComputeNodeInfo, LivenessState, NodeInfo, NodeType, Resources
from bacalhau.orchestrator import NodeChange, NodeChangeKind, NodeObserver, NodeSighting

V = LivenessState


class StaticNodeView:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeSighting] = {}
        self._observers: list[NodeObserver] = []
        self._version = 1_000

    # -- NodeView -------------------------------------------------------------------------------

    def get(self, node_id: str) -> NodeSighting | None:
        return self._nodes.get(node_id)

    def all_nodes(self) -> list[NodeSighting]:
        return list(self._nodes.values())

    def compute_nodes(self) -> list[NodeSighting]:
        return [n for n in self._nodes.values() if n.is_compute]

    def subscribe(self, observer: NodeObserver) -> Callable[[], None]:
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    # -- what the test does ---------------------------------------------------------------------

    async def _tell(self, kind: NodeChangeKind, node: NodeSighting, previous: V | None) -> None:
        self._nodes[node.node_id] = node
        for observer in list(self._observers):
            await observer(NodeChange(kind, node, previous))

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    async def join(self, info: NodeInfo) -> None:
        """``info``'s node is seen (first time: joined; otherwise a newer record)."""
        before = self._nodes.get(info.node_id)
        roles = frozenset({info.node_type})
        node = NodeSighting(info, roles, V.ALIVE, self._next_version(), 1)
        if before is None:
            await self._tell(NodeChangeKind.JOINED, node, None)
        elif before.liveness.is_down():
            await self._tell(NodeChangeKind.ALIVE, node, before.liveness)
        else:
            await self._tell(NodeChangeKind.UPDATED, node, before.liveness)

    async def publish_capacity(
        self, node_id: str, *, available: Resources, queued: Resources | None = None
    ) -> None:
        """The node publishes a newer record with this capacity."""
        before = self._nodes[node_id]
        assert before.info.compute is not None
        compute = replace(
            before.info.compute,
            available_capacity=available,
            queue_capacity=queued if queued is not None else Resources(),
        )
        await self.join(replace(before.info, compute=compute))

    async def learn_left(self, info: NodeInfo, version: int) -> None:
        """A node first heard of as already gone, with its last record (``version``): what
        a restarted requester learns of a departed node from the members."""
        roles = frozenset({info.node_type})
        gone = NodeSighting(info, roles, V.LEFT, version, 1)
        await self._tell(NodeChangeKind.LEFT, gone, None)

    async def suspect(self, node_id: str) -> None:
        before = self._nodes[node_id]
        await self._tell(NodeChangeKind.SUSPECT, replace(before, liveness=V.SUSPECT), V.ALIVE)

    async def kill(self, node_id: str, *, silent_for: float | None = 2.5) -> None:
        """The node is declared dead, last known alive ``silent_for`` seconds ago (None: when
        is unknown, as for a node first heard of as already dead)."""
        before = self._nodes[node_id]
        last = 0 if silent_for is None else time.time_ns() - int(silent_for * 1e9)
        dead = replace(before, liveness=V.DEAD, last_seen_ns=last)
        await self._tell(NodeChangeKind.DEAD, dead, before.liveness)

    async def leave(self, node_id: str) -> None:
        before = self._nodes[node_id]
        await self._tell(NodeChangeKind.LEFT, replace(before, liveness=V.LEFT), before.liveness)

    async def restart(self, node_id: str) -> None:
        """The node restarted before anyone declared it dead: a record of a new start (its
        version jumps, as versions start at the start time in ns), seen as an update."""
        self._version += 2_000_000
        await self.join(self._nodes[node_id].info)

    async def come_back(self, node_id: str) -> None:
        """A dead or departed node publishes a newer record: alive again."""
        await self.join(self._nodes[node_id].info)


def compute_node_info(
    node_id: str,
    *,
    engines: tuple[str, ...] = ("noop",),
    cpu: float = 4,
    free: float | None = None,
    queued: float = 0.0,
    labels: dict[str, str] | None = None,
) -> NodeInfo:
    """A compute node's description with the given engines and CPU capacity."""
    total = Resources(cpu=cpu, memory=8 * 10**9, disk=10**11)
    available = replace(total, cpu=cpu if free is None else free)
    return NodeInfo(
        node_id=node_id,
        node_type=NodeType.COMPUTE,
        labels=labels or {},
        compute=ComputeNodeInfo(
            execution_engines=list(engines),
            publishers=["local", "noop"],
            max_capacity=total,
            available_capacity=available,
            queue_capacity=Resources(cpu=queued),
            max_job_requirements=total,
        ),
        grpc_address="127.0.0.1:1",
    )
