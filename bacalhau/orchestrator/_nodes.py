"""The requester's directory of nodes: the cluster view plus the operator's decisions.

Who is in the cluster, what each node offers and whether it is reachable comes from the
injected :class:`~bacalhau.orchestrator.NodeView` (gossip). This module adds what is the
requester's business:

- **Approval.** With ``manual_approval`` a compute node seen for the first time is PENDING
  until an operator approves it (``bacalhau node approve``); without it nodes are APPROVED.
  Only APPROVED nodes are asked to bid (see ``_ranking``). A REJECTED node gets no work; a
  deleted node's decision is forgotten (PENDING again under manual approval). Decisions are
  kept in SQLite and survive a requester restart. This node's own compute role (a hybrid
  node) is always approved.
- **Liveness mapping.** ALIVE and SUSPECT nodes are usable (a suspect ranks lower), shown as
  CONNECTED. A node declared DEAD, or that LEFT, is lost: :meth:`on_node_lost` of the
  orchestrator fails its work as ``NodeLost`` and places replacements. It is usable again
  only with a newer record (it refuted its death, or restarted): a late report about work
  replaced meanwhile is not kept (the store refuses it) and the node's own execution report
  makes the requester cancel what it replaced.
- **Nodes known before.** A compute node gone from the view (it was down while the
  requester restarted, or gossip forgot it) is listed disconnected, as last known, until an
  operator deletes it; a node re-learned as dead keeps the time it was last known alive.
  Listing only: the scheduler reads the view alone.
- **Capacity between records.** An execution that ends frees what it held, and its place
  in the node's count of running executions, at once (:meth:`release`), until a record
  that shows the end arrives. A record published before the end can arrive after the
  requester learned of it (an answer is direct, gossip takes a round or two). The node
  says which record version was its latest at the end: only a newer record shows it. From
  a node that does not say, a newer record wipes a release once :data:`RECORD_LAG` has
  passed since it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bacalhau.errors import InvalidRequest, NodeNotFound
from bacalhau.models import (
    Connection,
    LivenessState,
    Membership,
    NodeInfo,
    NodeState,
    Resources,
    is_new_start,
    shallow_copy,
)
from bacalhau.orchestrator._approvals import ApprovalStore, KnownNode
from bacalhau.orchestrator._ranking import per_resource
from bacalhau.orchestrator._view import NodeChange, NodeChangeKind, NodeSighting, NodeView

log = logging.getLogger(__name__)
V = LivenessState

#: From a node that does not say its record version at an execution's end: seconds a record
#: published before the end may still reach the requester after it learned of the end
#: (gossip's dissemination, a few 0.1 s rounds, with room to spare). A record that shows the
#: end within it makes the node look freer than it is that long.
RECORD_LAG = 0.5


@dataclass(frozen=True, slots=True)
class _Release:
    #: The node's record version at the end, as the node said (``exact``), or else the one
    #: the requester held when it learned of the end.
    version: int
    #: When the requester learned of it (monotonic seconds).
    at: float
    freed: Resources
    exact: bool = False
    #: How many ends this stands for: the node's ends stamped with the same version are
    #: kept as one (a node that looks the same at every refresh publishes no new record,
    #: and its ends would otherwise pile up until it does).
    count: int = 1


class NodeAddressBook(Protocol):
    """Where to reach a node (the transport's compute client implements this)."""

    def register_node(self, node_id: str, address: str) -> None: ...


class NodeDirectory:
    """Nodes as the scheduler and the operator see them; an async context manager (it
    follows the view while entered)."""

    def __init__(
        self,
        *,
        self_info: NodeInfo,
        view: NodeView,
        approvals: ApprovalStore,
        address_book: NodeAddressBook,
        manual_approval: bool = False,
        on_node_change: Callable[[str], Awaitable[object]] | None = None,
        on_capacity_change: Callable[[str], Awaitable[object]] | None = None,
        on_node_lost: Callable[[str, float | None], Awaitable[None]] | None = None,
        record_lag: float = RECORD_LAG,
    ) -> None:
        self._self = self_info
        self._record_lag = record_lag
        self._view = view
        self._approvals = approvals
        self._book = address_book
        self._manual = manual_approval
        self._on_change = on_node_change
        #: Called with (node ID, seconds since last known alive, None if unknown) when a node
        #: is lost.
        self._on_lost = on_node_lost
        #: Called when a node offers more room than before (queued jobs may fit now).
        self._on_capacity = on_capacity_change
        #: Node ID -> the record version at which it was declared lost.
        self._lost: dict[str, int] = {}
        #: Node ID -> when it last joined, came back or restarted (Unix ns).
        self._back_since: dict[str, int] = {}
        #: Node ID -> the latest record version seen (a jump is a restart).
        self._versions: dict[str, int] = {}
        #: Node ID -> the ends of its executions that its records may not show yet.
        self._released: dict[str, list[_Release]] = {}
        #: The compute nodes as listed in this event-loop turn (see :meth:`compute_nodes`).
        self._listing: list[NodeState] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: Compute nodes as last known, kept across restarts (see the module docstring).
        self._known: dict[str, KnownNode] = approvals.known_nodes()
        #: Node ID -> its record version when an operator deleted it: a down node the view
        #: still holds (or learns again from the members, after a restart) is not listed
        #: again until it is back with a newer record. Kept across restarts.
        self._deleted: dict[str, int] = approvals.deleted_nodes()

    async def __aenter__(self) -> NodeDirectory:
        for node in self._view.compute_nodes():
            self._register(node)
        self._unsubscribe = self._view.subscribe(self._changed)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        # Those alive now were last seen now: a restart lists them so until they are back.
        now = time.time_ns()
        self._remember(
            *(n for n in self._view.compute_nodes() if not n.liveness.is_down()), last_seen_ns=now
        )

    def _remember(self, *nodes: NodeSighting, last_seen_ns: int = 0) -> None:
        """Keep what is known of ``nodes`` now (in one write)."""
        known = [
            KnownNode(
                node.info,
                self._last_alive(node, last_seen_ns or node.last_seen_ns or time.time_ns()),
                node.version,
                node.liveness if node.liveness.is_down() else V.ALIVE,
            )
            for node in nodes
        ]
        self._known.update((k.info.node_id, k) for k in known)
        try:
            self._approvals.remember(*known)
        except sqlite3.Error as err:
            log.warning("could not remember %d node(s): %s", len(known), err)

    def _last_alive(self, node: NodeSighting, seen: int) -> int:
        """When ``node`` was last alive, ``seen`` as far as the view knows: a down node whose
        record is no newer than the one remembered (its death heard again from another
        member, after a restart) has not been alive since it was remembered."""
        known = self._known.get(node.node_id)
        if (
            known is not None
            and node.liveness.is_down()
            and node.version <= known.record_version
            and known.last_seen_ns
        ):
            return min(seen, known.last_seen_ns)
        return seen

    # -- reading ------------------------------------------------------------------------

    def compute_nodes(self) -> list[NodeState]:
        """The compute nodes as the scheduler sees them.

        Built once per event-loop turn: the passes one turn makes (a node's answer applies
        two reports, each followed by a pass; a burst of submits) read the same list. A
        change made here (an execution's end, a loss, a decision) drops it at once; what
        the view learns arrives in turns of its own."""
        listing = self._listing
        if listing is None:
            listing = [self._state(n) for n in self._view.compute_nodes()]
            try:
                asyncio.get_running_loop().call_soon(self._forget_listing)
            except RuntimeError:
                return listing  # no event loop: no turn to keep it for
            self._listing = listing
        return list(listing)

    def compute_node(self, node_id: str) -> NodeState | None:
        """One compute node as :meth:`compute_nodes` lists it (None: no such compute node),
        without building the others."""
        if self._listing is not None:
            return next((n for n in self._listing if n.info.node_id == node_id), None)
        sighting = self._view.get(node_id)
        if sighting is None or not sighting.is_compute:
            return None
        return self._state(sighting)

    def _forget_listing(self) -> None:
        self._listing = None

    def all_nodes(self, *, known: bool = False) -> list[NodeState]:
        """Every node in the view; with ``known``, as an operator sees them, also the compute
        nodes known before that it lacks (disconnected)."""
        if not known:
            nodes = [self._state(n) for n in self._view.all_nodes()]
        else:
            nodes = [
                self._listed(n)
                for n in self._view.all_nodes()
                if not (n.liveness.is_down() and n.version <= self._deleted.get(n.node_id, -1))
            ]
        if not any(n.info.node_id == self._self.node_id for n in nodes):
            nodes.insert(0, NodeState(info=self._self, last_seen_ns=time.time_ns()))
        if known:
            seen = {n.info.node_id for n in nodes}
            nodes += [self._gone(k) for node_id, k in self._known.items() if node_id not in seen]
        return nodes

    def _listed(self, node: NodeSighting) -> NodeState:
        state = self._state(node)
        last_alive = self._last_alive(node, state.last_seen_ns)
        if last_alive != state.last_seen_ns:
            state = shallow_copy(state)
            state.last_seen_ns = last_alive
        return state

    def _relearned(self, node: NodeSighting) -> bool:
        """Whether ``node`` is a record of a node known to be down, no newer than the one it
        went down with: heard of again (a restarted requester learns the cluster from its
        members), not seen alive."""
        known = self._known.get(node.node_id)
        return (
            known is not None and known.liveness.is_down() and node.version <= known.record_version
        )

    def _gone(self, known: KnownNode) -> NodeState:
        """A compute node the view no longer holds, as last known."""
        node_id = known.info.node_id
        return NodeState(
            info=known.info,
            membership=self._membership(node_id),
            membership_message=self._approvals.message(node_id),
            connection=Connection.DISCONNECTED,
            last_seen_ns=known.last_seen_ns,
            # One that was up when last known has not been heard from since: suspect.
            liveness=known.liveness if known.liveness.is_down() else V.SUSPECT,
            roles=(known.info.node_type,),
            record_version=known.record_version,
        )

    def get(self, node_id: str, *, known: bool = False) -> NodeState:
        """A node by ID or unique prefix (with ``known``, among :meth:`all_nodes`'s)."""
        nodes = self.all_nodes(known=known)
        exact = [n for n in nodes if n.info.node_id == node_id]
        # Then its name (``--name``, or the host's), as Bacalhau's nodes go by their names.
        named = [n for n in nodes if node_id and n.info.labels.get("name") == node_id]
        matches = (
            exact or named or [n for n in nodes if node_id and n.info.node_id.startswith(node_id)]
        )
        if len(matches) == 1:
            return matches[0]
        if matches:
            # Not "not found": a client acting on the code would take an existing node for gone.
            what = "name" if named and not exact else "ID prefix"
            raise InvalidRequest(
                f"node {what} {node_id} matches {len(matches)} nodes",
                hint="use more of the node's ID (`bacalhau node list` shows them)",
                component="NodeManager",
                details={"Field": "node_id"},
            )
        raise NodeNotFound(f"node not found: {node_id}")

    def _membership(self, node_id: str) -> Membership:
        if node_id == self._self.node_id:
            return Membership.APPROVED
        decided = self._approvals.get(node_id)
        if decided is not None:
            return decided
        return Membership.PENDING if self._manual else Membership.APPROVED

    def _is_lost(self, node: NodeSighting) -> bool:
        lost_at = self._lost.get(node.node_id)
        return lost_at is not None and node.version <= lost_at

    def _state(self, node: NodeSighting) -> NodeState:
        info = node.info
        released = self._released.get(node.node_id)
        if released and info.compute is not None:
            pending = _pending(released, node.version, time.monotonic(), self._record_lag)
            if pending:
                info = _with_freed(info, pending)
        usable = node.liveness in (V.ALIVE, V.SUSPECT) and not self._is_lost(node)
        return NodeState(
            info=info,
            membership=self._membership(node.node_id),
            membership_message=self._approvals.message(node.node_id),
            connection=Connection.CONNECTED if usable else Connection.DISCONNECTED,
            last_seen_ns=node.last_seen_ns,
            liveness=node.liveness if usable or node.liveness.is_down() else V.DEAD,
            roles=tuple(sorted(node.roles)),
            record_version=node.version,
            addresses=dict(node.addresses),
            health=node.health,
            back_since_ns=self._back_since.get(node.node_id, 0),
        )

    # -- changes ------------------------------------------------------------------------

    def _register(self, node: NodeSighting) -> None:
        if node.is_compute and node.info.grpc_address:
            self._book.register_node(node.node_id, node.info.grpc_address)
        if node.is_compute and not self._manual and self._approvals.get(node.node_id) is None:
            # Approved as it joins, and kept (as Bacalhau keeps a node's membership): turning
            # manual approval on later leaves the nodes already in the cluster approved.
            self._approvals.set(node.node_id, Membership.APPROVED, "approved on joining")

    async def _changed(self, change: NodeChange) -> None:
        self._listing = None
        node = change.node
        if not node.is_compute:
            return
        node_id = node.node_id
        kind = change.kind
        before = self._versions.get(node_id, 0)
        self._versions[node_id] = max(before, node.version)
        # A record from a new start: it restarted, maybe before it was declared dead.
        restarted = is_new_start(before, node.version)
        try:
            if node_id in self._deleted:
                if node.liveness.is_down() and node.version <= self._deleted[node_id]:
                    return  # the record it was deleted with, heard again: not back
                del self._deleted[node_id]  # alive, or a newer record: it is back
                self._approvals.undelete(node_id)
            if kind in (NodeChangeKind.DEAD, NodeChangeKind.LEFT):
                self._remember(node)
                if node_id in self._lost and self._lost[node_id] >= node.version:
                    return
                how = "left the cluster" if kind is NodeChangeKind.LEFT else "is dead"
                log.warning("node %s %s", node_id, how)
                silent = (
                    max(0.0, (time.time_ns() - node.last_seen_ns) / 1e9)
                    if node.last_seen_ns
                    else None
                )
                self.mark_lost(node_id, version=node.version)
                if self._on_lost is not None:
                    await self._on_lost(node_id, silent)
                return
            if kind is NodeChangeKind.SUSPECT:
                log.info("node %s is suspected of failure", node_id)
                return
            self._register(node)
            back = node_id in self._lost and not self._is_lost(node)
            if back:
                del self._lost[node_id]
            if kind is NodeChangeKind.JOINED or back or restarted:
                self._back_since[node_id] = time.time_ns()
                self._listing = None
                if not self._relearned(node):
                    self._remember(node, last_seen_ns=time.time_ns())
            if (
                kind is NodeChangeKind.JOINED
                or back
                or (kind is NodeChangeKind.ALIVE and change.previous is not V.SUSPECT)
            ):
                # A node back from the dead is worth an operator's eye (a flapping node).
                (log.warning if back else log.info)(
                    "node %s %s at %s (%s)",
                    node_id,
                    "is back" if back else "joined",
                    node.info.grpc_address,
                    self._membership(node_id).value.lower(),
                )
                if self._on_change is not None:
                    await self._on_change(node_id)
            elif self._on_capacity is not None:
                # A newer record, or a refuted suspicion: queued jobs may fit now.
                await self._on_capacity(node_id)
        except Exception:
            log.exception("handling %s of node %s", kind.value, node_id)

    def mark_lost(self, node_id: str, *, version: int | None = None) -> None:
        """Treat a node as lost until it publishes a record newer than ``version`` (default:
        the one the view holds now)."""
        if version is None:
            seen = self._view.get(node_id)
            version = seen.version if seen is not None else 0
        self._lost[node_id] = max(version, self._lost.get(node_id, 0))
        self._listing = None

    def release(self, node_id: str, freed: Resources, *, record_version: int = 0) -> None:
        """Count ``freed`` as available on a node, and one execution fewer as running there,
        until a record that shows it arrives (an execution there just ended; the scheduler
        may place the next job at once). ``record_version``: the node's record version at
        the end, when the node said it (0: it did not)."""
        node = self._view.get(node_id)
        if node is None or node.info.compute is None:
            return
        now = time.monotonic()
        kept = _pending(self._released.get(node_id, []), node.version, now, self._record_lag)
        if record_version:
            same = next((r for r in kept if r.exact and r.version == record_version), None)
            if same is not None:
                kept.remove(same)
                freed, count = same.freed.add(freed), same.count + 1
            else:
                count = 1
            kept.append(_Release(record_version, now, freed, exact=True, count=count))
        else:
            kept.append(_Release(node.version, now, freed))
        self._released[node_id] = kept
        self._listing = None

    def update(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        """An operator's decision about a compute node (ID or unique prefix): ``approve``,
        ``reject`` or ``delete``. Returns (success, error), as the REST API answers it."""
        action = action.lower()
        if action not in ("approve", "reject", "delete"):
            return False, "unsupported action"
        try:
            node = self.get(node_id, known=True)
        except NodeNotFound as exc:
            if self._approvals.get(node_id) is None:
                return False, exc.message
            full_id = node_id  # decided about earlier, not heard from since this start
        else:
            full_id = node.info.node_id
        if full_id == self._self.node_id:
            return False, f"node {full_id} is this requester, not a compute node"
        already = {"approve": Membership.APPROVED, "reject": Membership.REJECTED}.get(action)
        if already is not None and self._membership(full_id) is already:
            # Bacalhau's words: a decision made twice is refused, not silently repeated.
            return False, f"node {full_id} already {already.value.lower()}"
        self._listing = None
        if action == "approve":
            self._approvals.set(full_id, Membership.APPROVED, message)
        elif action == "reject":
            self._approvals.set(full_id, Membership.REJECTED, message)
        else:
            self._approvals.forget(full_id)
            known = self._known.pop(full_id, None)
            seen = self._view.get(full_id)
            if seen is not None:
                version = seen.version
            else:
                version = known.record_version if known is not None else 0
            self._deleted[full_id] = version
            self._approvals.mark_deleted(full_id, version)
        # At WARNING, as a node's death is: the log is where an operator's reason is kept.
        log.warning(
            "node %s: %s by an operator%s",
            full_id,
            {"approve": "approved", "reject": "rejected", "delete": "deleted"}[action],
            f" ({message})" if message else "",
        )
        return True, ""


def _pending(released: list[_Release], version: int, now: float, lag: float) -> list[_Release]:
    """The ends a node's record of ``version`` does not show: those the node said came after
    it; from a node that did not say, those learned of while it was the latest, or so
    recently (``lag``) that an older record may have arrived since."""
    return [
        r
        for r in released
        if (version <= r.version if r.exact else r.version == version or now - r.at < lag)
    ]


def _freed_from_queue_first(
    top: float, free: float, queued: float, freed: float
) -> tuple[float, float]:
    """One resource of a node's record (total, free, queued) after ``freed`` ended."""
    if not top:
        return free, queued
    from_queue = min(queued, freed)
    return min(free + freed - from_queue, top), queued - from_queue


def _with_freed(info: NodeInfo, released: list[_Release]) -> NodeInfo:
    """``info`` with what ``released`` freed: first out of the node's queue (queued work
    takes the room an end frees, or was itself what ended), the rest added to its available
    capacity (capped at the total); and as many executions fewer in its counts (not below
    none)."""
    assert info.compute is not None
    compute = info.compute
    freed = Resources()
    for r in released:
        freed = freed.add(r.freed)
    available, in_queue = per_resource(
        _freed_from_queue_first,
        compute.max_capacity,
        compute.available_capacity,
        compute.queue_capacity,
        freed,
    )
    # The record may have counted an ended execution as running or, before it started, as
    # queued: fewer running first, then fewer queued.
    ended = sum(r.count for r in released)
    from_running = min(ended, compute.running_executions)
    # Field by field (``shallow_copy``): this runs for every node on every placement.
    updated = shallow_copy(compute)
    updated.available_capacity = available
    updated.queue_capacity = in_queue
    updated.running_executions = compute.running_executions - from_running
    updated.enqueued_executions = max(0, compute.enqueued_executions - (ended - from_running))
    out = shallow_copy(info)
    out.compute = updated
    return out
