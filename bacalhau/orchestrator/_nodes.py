"""Node manager: who has joined, what they can run, and whether they are still alive.

Compute nodes join with a signed NodeInfo and then heartbeat with their free capacity. A
node silent for longer than ``disconnect_timeout`` is marked DISCONNECTED and the
orchestrator re-evaluates every job with work on it (the scheduler fails those executions and
places new ones), instead of leaving jobs stuck on a dead node. A lost node's heartbeats are
refused until it joins again, announcing the executions it holds so that the ones replaced
meanwhile are stopped on it.

Membership: with ``manual_approval`` a node that joins for the first time is PENDING until an
operator approves it (``bacalhau node approve``); without it, nodes are APPROVED on joining.
Only APPROVED nodes are asked to bid (see ``_ranking``). A REJECTED node cannot join again
until it is approved; a deleted node is forgotten and joins afresh (PENDING again under
manual approval). This node's own compute role (a hybrid node) is always approved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bacalhau.errors import NodeNotFound
from bacalhau.models import (
    Connection,
    Heartbeat,
    JoinRequest,
    JoinResponse,
    Membership,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
)

log = logging.getLogger(__name__)


class NodeAddressBook(Protocol):
    """Where to reach a node (the transport's compute client implements this)."""

    def register_node(self, node_id: str, address: str) -> None: ...


class NodeManager:
    def __init__(
        self,
        *,
        self_info: NodeInfo,
        address_book: NodeAddressBook,
        heartbeat_interval: float = 5.0,
        disconnect_timeout: float = 30.0,
        manual_approval: bool = False,
        on_node_change: Callable[[str], Awaitable[None]] | None = None,
        on_capacity_change: Callable[[str], Awaitable[object]] | None = None,
        on_node_lost: Callable[[str, float], Awaitable[None]] | None = None,
    ) -> None:
        self._self = NodeState(info=self_info, last_seen_ns=time.time_ns())
        self._nodes: dict[str, NodeState] = {}
        self._book = address_book
        self.heartbeat_interval = heartbeat_interval
        self.disconnect_timeout = disconnect_timeout
        self._manual = manual_approval
        self._on_change = on_node_change
        #: Called with (node ID, seconds silent) when a node is declared lost.
        self._on_lost = on_node_lost
        #: Called when a node reports more room than before (queued jobs may fit now).
        self._on_capacity = on_capacity_change
        self._monitor: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NodeManager:
        self._monitor = asyncio.create_task(self._watch(), name="node-liveness")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    def compute_nodes(self) -> list[NodeState]:
        return list(self._nodes.values())

    def all_nodes(self) -> list[NodeState]:
        return [self._self, *self._nodes.values()]

    def get(self, node_id: str) -> NodeState:
        if node_id == self._self.info.node_id:
            return self._self
        node = self._nodes.get(node_id)
        if node is not None:
            return node
        matches = [n for nid, n in self._nodes.items() if nid.startswith(node_id)]
        self_id = self._self.info.node_id
        if self_id.startswith(node_id) and self_id not in self._nodes:  # hybrid: one match
            matches.append(self._self)
        if len(matches) == 1 and node_id:
            return matches[0]
        raise NodeNotFound(
            f"node not found: {node_id}" if not matches else f"node ID {node_id} is ambiguous"
        )

    async def join(self, request: JoinRequest) -> JoinResponse:
        info = request.info
        if info.node_type != NodeType.COMPUTE or info.compute is None:
            return JoinResponse(accepted=False, reason="only compute nodes can join")
        if not info.grpc_address:
            return JoinResponse(accepted=False, reason="the node did not say where to reach it")
        existing = self._nodes.get(info.node_id)
        if existing is not None and existing.membership == Membership.REJECTED:
            return JoinResponse(accepted=False, reason="this node was rejected by an operator")
        if existing is not None:
            membership = existing.membership
        elif self._manual and info.node_id != self._self.info.node_id:
            membership = Membership.PENDING
        else:
            membership = Membership.APPROVED
        was_connected = existing is not None and existing.connection == Connection.CONNECTED
        self._nodes[info.node_id] = NodeState(
            info=info,
            membership=membership,
            connection=Connection.CONNECTED,
            last_seen_ns=time.time_ns(),
        )
        self._book.register_node(info.node_id, info.grpc_address)
        log.info(
            "node %s joined from %s (%s)",
            info.node_id,
            info.grpc_address,
            membership.value.lower(),
        )
        if not was_connected and self._on_change is not None:
            await self._on_change(info.node_id)
        return JoinResponse(accepted=True, heartbeat_interval=self.heartbeat_interval)

    async def heartbeat(self, hb: Heartbeat) -> None:
        node = self._nodes.get(hb.node_id)
        if node is None:
            # Unknown (e.g. this requester restarted): the node must join again.
            raise NodeNotFound(
                f"node {hb.node_id} has not joined", hint="the compute node re-joins by itself"
            )
        if node.connection != Connection.CONNECTED:
            # Its work was failed and placed elsewhere meanwhile: it comes back only by joining
            # again with the list of executions it holds, so the requester can stop those it
            # replaced (a flapping node must not run a job twice to completion).
            raise NodeNotFound(
                f"node {hb.node_id} was declared lost", hint="the compute node re-joins by itself"
            )
        node.last_seen_ns = time.time_ns()
        more_room = False
        if node.info.compute is not None:
            before = node.info.compute
            more_room = (
                hb.available_capacity.cpu > before.available_capacity.cpu + 1e-9
                or hb.available_capacity.memory > before.available_capacity.memory
                or hb.queue_used_capacity.cpu < before.queue_capacity.cpu - 1e-9
                or hb.queue_used_capacity.memory < before.queue_capacity.memory
            )
            node.info.compute.available_capacity = hb.available_capacity
            node.info.compute.queue_capacity = hb.queue_used_capacity
            node.info.compute.running_executions = hb.running_executions
            node.info.compute.enqueued_executions = hb.enqueued_executions
        if more_room and self._on_capacity is not None:
            await self._on_capacity(hb.node_id)

    def mark_lost(self, node_id: str) -> None:
        """Declare a compute node dead (its heartbeats are refused until it joins again)."""
        node = self._nodes.get(node_id)
        if node is not None:
            node.connection = Connection.DISCONNECTED

    def release(self, node_id: str, freed: Resources) -> None:
        """Count ``freed`` as available on a node until its next heartbeat says otherwise
        (an execution there just ended; the scheduler may place the next job at once)."""
        node = self._nodes.get(node_id)
        if node is None or node.info.compute is None:
            return
        info = node.info.compute
        free, top = info.available_capacity, info.max_capacity
        info.available_capacity = Resources(
            cpu=min(free.cpu + freed.cpu, top.cpu) if top.cpu else free.cpu,
            memory=min(free.memory + freed.memory, top.memory) if top.memory else free.memory,
            disk=min(free.disk + freed.disk, top.disk) if top.disk else free.disk,
            gpu=min(free.gpu + freed.gpu, top.gpu) if top.gpu else free.gpu,
        )

    def update(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        """An operator's decision about a compute node (ID or unique prefix): ``approve``,
        ``reject`` or ``delete``. Returns (success, error), as the REST API answers it."""
        action = action.lower()
        if action not in ("approve", "reject", "delete"):
            return False, "unsupported action"
        node = self._nodes.get(node_id)
        if node is None:
            try:
                node = self.get(node_id)
            except NodeNotFound as exc:
                return False, exc.message
        if node is self._self:
            return False, f"node {node.info.node_id} is this requester, not a compute node"
        if action == "approve":
            node.membership = Membership.APPROVED
        elif action == "reject":
            node.membership = Membership.REJECTED
        else:
            self._nodes.pop(node.info.node_id, None)
        log.info(
            "node %s: %s by an operator%s",
            node.info.node_id,
            {"approve": "approved", "reject": "rejected", "delete": "deleted"}[action],
            f" ({message})" if message else "",
        )
        return True, ""

    async def _watch(self) -> None:
        interval = max(0.2, min(self.disconnect_timeout / 3, 5.0))
        while True:
            await asyncio.sleep(interval)
            deadline = time.time_ns() - int(self.disconnect_timeout * 1e9)
            for node in list(self._nodes.values()):
                if node.connection == Connection.CONNECTED and node.last_seen_ns < deadline:
                    node.connection = Connection.DISCONNECTED
                    log.warning("node %s missed its heartbeats: disconnected", node.info.node_id)
                    silent = (time.time_ns() - node.last_seen_ns) / 1e9
                    if self._on_lost is not None:
                        try:
                            await self._on_lost(node.info.node_id, silent)
                        except Exception:
                            log.exception("failing the work of lost node %s", node.info.node_id)
                    elif self._on_change is not None:
                        try:
                            await self._on_change(node.info.node_id)
                        except Exception:
                            log.exception("re-evaluating jobs of node %s", node.info.node_id)
