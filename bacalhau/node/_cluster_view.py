"""The orchestrator's :class:`~bacalhau.orchestrator.NodeView`, backed by gossip.

:class:`GossipNodeView` reads the members of a :class:`~bacalhau.gossip.MembershipRunner`
and turns its member events into :class:`~bacalhau.orchestrator.NodeChange`\\ s, delivered to
observers one at a time, in order, by one task (observers are async; the runner's callbacks
must not block).

Last seen: a live member is being probed successfully, so it was seen "now"; a suspect, dead
or departed one was last known alive when it stopped being alive (wall clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bacalhau.gossip import MemberEvent, MemberEventKind, MemberInfo, MembershipRunner, NodeRecord
from bacalhau.models import LivenessState, NodeInfo
from bacalhau.orchestrator import (
    NodeChange,
    NodeChangeKind,
    NodeObserver,
    NodeSighting,
)

log = logging.getLogger(__name__)

_KINDS = {
    MemberEventKind.JOINED: NodeChangeKind.JOINED,
    MemberEventKind.UPDATED: NodeChangeKind.UPDATED,
    MemberEventKind.SUSPECT: NodeChangeKind.SUSPECT,
    MemberEventKind.ALIVE: NodeChangeKind.ALIVE,
    MemberEventKind.DEAD: NodeChangeKind.DEAD,
    MemberEventKind.LEFT: NodeChangeKind.LEFT,
}


class GossipNodeView:
    """The cluster as this node's gossip member sees it; an async context manager.

    Created before the runner exists (the runner needs the node's bound address), and given
    it with :meth:`attach`; until then the view is empty.
    """

    def __init__(self, runner: MembershipRunner | None = None) -> None:
        self._runner: MembershipRunner | None = None
        self._observers: list[NodeObserver] = []
        self._queue: asyncio.Queue[NodeChange] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: Wall-clock ns when a member stopped being alive.
        self._down_since: dict[str, int] = {}
        #: Per member, its record and the NodeInfo made from it: the scheduler lists the
        #: nodes on every pass, and a record changes far less often (records are immutable,
        #: so the same record object always makes the same NodeInfo). Shared: not changed.
        self._infos: dict[str, tuple[NodeRecord, NodeInfo]] = {}
        if runner is not None:
            self.attach(runner)

    def attach(self, runner: MembershipRunner) -> None:
        self._runner = runner
        self._unsubscribe = runner.subscribe(self._on_event)

    # -- NodeView ---------------------------------------------------------------------------

    def get(self, node_id: str) -> NodeSighting | None:
        info = self._runner.member(node_id) if self._runner is not None else None
        return self._sighting(info) if info is not None else None

    def all_nodes(self) -> list[NodeSighting]:
        if self._runner is None:
            return []
        return [self._sighting(m) for m in self._runner.members()]

    def compute_nodes(self) -> list[NodeSighting]:
        return [n for n in self.all_nodes() if n.is_compute]

    def subscribe(self, observer: NodeObserver) -> Callable[[], None]:
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> GossipNodeView:
        self._task = asyncio.create_task(self._deliver(), name="node-view-events")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- internals --------------------------------------------------------------------------

    def _sighting(self, member: MemberInfo) -> NodeSighting:
        alive = member.state is LivenessState.ALIVE
        record = member.record
        addresses = {
            name: address
            for name, address in (
                ("GRPC", record.grpc_address),
                ("API", record.api_address),
                ("Publisher", record.publisher_address),
            )
            if address
        }
        kept = self._infos.get(member.node_id)
        if kept is not None and kept[0] is record:
            info = kept[1]
        else:
            info = record.to_node_info()
            self._infos[member.node_id] = (record, info)
        return NodeSighting(
            info=info,
            roles=record.roles,
            liveness=member.state,
            version=record.version,
            last_seen_ns=time.time_ns() if alive else self._down_since.get(member.node_id, 0),
            addresses=addresses,
            health=record.health,
        )

    def _on_event(self, event: MemberEvent) -> None:
        node_id = event.member.node_id
        if event.kind is MemberEventKind.LEFT:
            self._infos.pop(node_id, None)
        if event.member.state is LivenessState.ALIVE:
            self._down_since.pop(node_id, None)
        elif node_id not in self._down_since and (
            event.previous is not None or not event.member.state.is_down()
        ):
            # Seen going down. A member first heard of as already down (from a peer, after
            # this node started) went down at a time nobody said: its last sighting stays
            # unknown rather than "now", which would read as "seen a moment ago" and make
            # jobs wait for a node that left long before.
            self._down_since[node_id] = time.time_ns()
        change = NodeChange(
            kind=_KINDS[event.kind],
            node=self._sighting(event.member),
            previous=event.previous,
        )
        self._queue.put_nowait(change)

    async def _deliver(self) -> None:
        while True:
            change = await self._queue.get()
            for observer in list(self._observers):
                try:
                    await observer(change)
                except Exception:
                    log.exception("node view observer failed on %s", change.kind.value)
