"""Moving work that waits in one compute node's run queue to a node with room for it now.

A compute node takes work beyond its free room into its run queue (over-subscription, as
Bacalhau's): the next execution then starts the moment the current one ends, without a round
trip. But an execution may wait there long while another node sits idle: behind a service
that never ends, behind a long run, or because the other node's room freed up after the
placement. Bacalhau leaves it there. Here the node's execution report lists what waits in
its queue (and a node sends one soon after an execution has waited a couple of seconds), and
an execution that has waited ``queue_move_after`` seconds is moved when another node that
may run the job has room for it now:

1. the node is asked to withdraw it (``WithdrawQueued``), which it does only while the
   execution still waits: one that started meanwhile stays where it is, so nothing is lost
   or run twice;
2. the withdrawn execution is recorded as cancelled and marked as moved (:data:`MOVED`: no
   attempt at the job, nor at that node), saying why in its history;
3. the job is placed again, on the node the move chose (the moved execution names it,
   :data:`~bacalhau.orchestrator._attempts.MOVED_TO`) while that node still has room for
   it; ranking alone might put it back where its data is, into the queue it left.

Highest priority first, then longest waiting; within one pass, room a move takes on a node
is not offered to the next. A daemon's execution belongs to its node and is never moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bacalhau._wall_steps import elapsed_ns
from bacalhau.errors import BacalhauError, NotFound
from bacalhau.models import (
    CancelExecutionRequest,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    NodeState,
    QueuedExecution,
    Resources,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._attempts import MOVED, MOVED_TO, QUEUED
from bacalhau.orchestrator._metrics import QUEUE_MOVES
from bacalhau.orchestrator._planner import ComputeTransport
from bacalhau.orchestrator._ranking import job_usage, rank_nodes
from bacalhau.orchestrator._retries import retry_policy
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._store import JobStore

log = logging.getLogger(__name__)
D = ExecutionDesiredStateType
E = ExecutionStateType

#: Job types whose waiting executions may move (a daemon runs on every node: its execution
#: on a node is that node's).
_MOVABLE = frozenset({"batch", "ops", "service"})
#: Seconds between two looks while something waits (a node with room again looks at once).
CHECK_EVERY = 1.0


@dataclass(slots=True)
class _Waiting:
    node_id: str
    #: When it began waiting there (``time.monotonic()``).
    since: float


class QueueMoves:
    """Knows what waits in compute nodes' run queues (their reports) and moves what has
    waited too long to a node with room for it now."""

    def __init__(
        self,
        *,
        store: JobStore,
        transport: ComputeTransport,
        nodes: Callable[[], Sequence[NodeState]],
        settings: SchedulerSettings,
        place: Callable[[Job, str], object],
    ) -> None:
        """``nodes``: the compute nodes as ranking sees them (with what was just placed);
        ``place``: evaluates a job again (its moved execution is replaced there)."""
        self._store = store
        self._transport = transport
        self._nodes = nodes
        self._settings = settings
        self._place = place
        self._waiting: dict[str, _Waiting] = {}
        #: Nodes heard from since this requester started.
        self._seen_nodes: set[str] = set()
        self._wake = asyncio.Event()

    def note(
        self, node_id: str, queued: Sequence[QueuedExecution], held: Collection[str] = ()
    ) -> None:
        """``node_id`` reported what waits in its queue (``queued``) among the executions it
        holds (``held``): that replaces what was known. An execution's history says when it
        began to wait there, and when it started after waiting (held, no longer queued).

        The wait is also kept in the execution's details (:data:`QUEUED`, when it began): a
        requester that restarts says each thing once, and an execution lost with its node
        while it waited is known never to have run (see ``fail_lost``)."""
        now, now_wall = time.monotonic(), now_ns()
        known = {k for k, w in self._waiting.items() if w.node_id == node_id}
        before = set(known)
        if node_id not in self._seen_nodes:
            # First report since this requester started: what it said before, it kept.
            self._seen_nodes.add(node_id)
            before |= set(held)
        for execution_id in before:
            self._waiting.pop(execution_id, None)
        for q in queued:
            waited = max(0.0, q.waited)
            self._waiting[q.execution_id] = _Waiting(node_id, now - waited)
            if q.execution_id not in known:  # (a wait already known is already recorded)
                self._began_waiting(q.execution_id, node_id, now_wall - int(waited * 1e9))
        for execution_id in before:
            if execution_id in held and execution_id not in self._waiting:
                self._started(execution_id, node_id, now_wall)
        if queued:
            self._wake.set()

    def _began_waiting(self, execution_id: str, node_id: str, began: int) -> None:
        """Record (once) that an accepted execution waits in its node's queue."""
        with contextlib.suppress(BacalhauError):
            ex = self._store.get_execution(execution_id)
            if ex.compute_state != E.BID_ACCEPTED or QUEUED in ex.compute_details:
                return
            self._store.update_execution(
                execution_id,
                compute_details={**ex.compute_details, QUEUED: str(began)},
                expected_states=frozenset({E.BID_ACCEPTED}),
                event=Event(
                    message=f"Waiting in node {node_id}'s run queue for room",
                    topic="Scheduling",
                    timestamp=began,
                ),
            )

    def _started(self, execution_id: str, node_id: str, now: int) -> None:
        """Record that an execution known to wait in its node's queue started there."""
        with contextlib.suppress(BacalhauError, ValueError):
            ex = self._store.get_execution(execution_id)
            began = ex.compute_details.get(QUEUED)
            if ex.compute_state != E.BID_ACCEPTED or began is None:
                return
            details = {k: v for k, v in ex.compute_details.items() if k != QUEUED}
            # Without the wall clock's forward steps since (see bacalhau._wall_steps).
            waited = max(0, elapsed_ns(int(began), now)) / 1e9
            self._store.update_execution(
                execution_id,
                compute_details=details,
                expected_states=frozenset({E.BID_ACCEPTED}),
                event=Event(
                    message=f"Started on node {node_id} after {waited:.0f}s in its run queue",
                    topic="Scheduling",
                    timestamp=now,
                ),
            )

    def room_changed(self) -> None:
        """A node may have room again: look now rather than at the next tick."""
        if self._waiting:
            self._wake.set()

    def waiting(self) -> dict[str, str]:
        """The executions known to wait in a node's queue, by ID: the node's ID."""
        return {k: w.node_id for k, w in self._waiting.items()}

    async def run(self) -> None:
        """Move what has waited too long, whenever woken and every :data:`CHECK_EVERY`
        seconds while something waits; until cancelled."""
        while True:
            # ``asyncio.timeout``, not ``wait_for``: a cancel racing the wait must not be lost.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_EVERY):
                    await self._wake.wait()
            self._wake.clear()
            if not self._waiting or self._settings.queue_move_after <= 0:
                continue
            try:
                await self.move_due()
            except Exception:
                log.exception("moving queued executions failed")

    async def move_due(self) -> int:
        """One pass: move each execution that has waited long enough to a node with room
        for it now. Returns how many moved."""
        due = self._due(time.monotonic())
        if not due:
            return 0
        nodes = self._nodes()
        taken: dict[str, Resources] = {}
        #: (job, node) pairs a move of this pass went to: one execution of a job per node
        #: (a job's partitions and replicas each need a node of their own).
        aimed: set[tuple[str, str]] = set()
        moved = 0
        for job, ex, waited in due:
            target = self._room_for(job, ex, nodes, taken, aimed)
            if target is not None and await self._move(job, ex, waited, target):
                moved += 1
        return moved

    def _due(self, now: float) -> list[tuple[Job, Execution, float]]:
        """What has waited ``queue_move_after`` seconds and may still move (what ended or
        was stopped meanwhile is forgotten), highest priority then longest waiting first."""
        due: list[tuple[Job, Execution, float]] = []
        for execution_id, w in list(self._waiting.items()):
            try:
                ex = self._store.get_execution(execution_id)
                job = self._store.get_job(ex.job_id)
            except NotFound:
                del self._waiting[execution_id]
                continue
            if (
                ex.node_id != w.node_id
                or ex.compute_state != E.BID_ACCEPTED
                or ex.desired_state != D.RUNNING
                or job.state.is_terminal()
            ):
                del self._waiting[execution_id]
                continue
            # (A daemon's stays known, so that its history says when it starts.)
            if job.type in _MOVABLE and now - w.since >= self._settings.queue_move_after:
                due.append((job, ex, now - w.since))
        due.sort(key=lambda d: (-d[0].priority, -d[2]))
        return due

    def _room_for(
        self,
        job: Job,
        ex: Execution,
        nodes: Sequence[NodeState],
        taken: dict[str, Resources],
        aimed: set[tuple[str, str]],
    ) -> str | None:
        """The best node, other than the execution's and one another execution of the job
        is moving to, that may run the job and has room for it now (free, not queue room);
        its room is then taken for this pass."""
        usage = ex.allocated if ex.allocated.cpu or ex.allocated.memory else job_usage(job)
        ranks = rank_nodes(
            job,
            nodes,
            self._store.executions_of(job.id),
            attempts_per_node=retry_policy(job, self._settings).attempts_per_node,
            min_reputation=self._settings.min_reputation,
            now=now_ns(),
        )
        for r in ranks:
            node_id = r.node.info.node_id
            info = r.node.info.compute
            if not r.suitable or node_id == ex.node_id or info is None:
                continue
            if (job.id, node_id) in aimed:
                continue
            free = info.available_capacity.sub(taken.get(node_id, Resources()))
            if usage.fits_in(free):
                taken[node_id] = taken.get(node_id, Resources()).add(usage)
                aimed.add((job.id, node_id))
                return node_id
        return None

    async def _move(self, job: Job, ex: Execution, waited: float, target: str) -> bool:
        """Withdraw ``ex`` from its node's queue and place its job again; False when the
        node did not withdraw it (it started meanwhile, or could not be asked)."""
        why = (
            f"moved to node {target}: it waited {waited:.0f}s in node {ex.node_id}'s run "
            f"queue, and node {target} has room for it now"
        )
        self._waiting.pop(ex.id, None)
        try:
            state = await self._transport.withdraw_queued(
                ex.node_id, CancelExecutionRequest(ex.id, why)
            )
        except BacalhauError as err:
            # Asked again once the node reports it waiting again.
            log.info("could not withdraw execution %s from node %s: %s", ex.id, ex.node_id, err)
            QUEUE_MOVES.labels(outcome="failed").inc()
            return False
        if state is not None:
            QUEUE_MOVES.labels(outcome="started").inc()
            where = f"it is {state} there" if state else "the node does not know it"
            log.info("execution %s not withdrawn from node %s: %s", ex.id, ex.node_id, where)
            return False
        details = {**ex.compute_details, MOVED: "true", MOVED_TO: target}
        try:
            self._store.update_execution(
                ex.id,
                compute_state=E.CANCELLED,
                desired_state=D.STOPPED,
                compute_message=why,
                desired_message=why,
                compute_details=details,
                expected_states=frozenset({E.BID_ACCEPTED}),
                event=Event(message="M" + why[1:], topic="Scheduling", timestamp=now_ns()),
            )
        except BacalhauError as err:
            # Stopped meanwhile (the job was stopped, the node lost): what that did stands.
            log.info("moved execution %s changed meanwhile: %s", ex.id, err)
            QUEUE_MOVES.labels(outcome="stopped").inc()
            return False
        QUEUE_MOVES.labels(outcome="moved").inc()
        log.info("execution %s of job %s %s", ex.id, job.id, why)
        self._place(self._store.get_job(job.id), TriggeredBy.EXEC_UPDATE)
        return True
