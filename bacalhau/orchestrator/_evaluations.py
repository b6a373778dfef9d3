"""The orchestrator's evaluations: how one is made, queued, taken by a worker and processed.

:class:`EvaluationRunner` is the part of :class:`~bacalhau.orchestrator.Orchestrator` every
other part builds on: the state they share (declared here, set by ``Orchestrator.__init__``),
the evaluation a change of a job starts, the worker loop that takes evaluations from the broker,
and the scheduling pass that plans a job now.
"""

from __future__ import annotations

import asyncio
import logging
import random

from bacalhau.models import (
    Evaluation,
    EvaluationStatus,
    Job,
    NodeReputation,
    NodeState,
    now_ns,
)
from bacalhau.orchestrator._broker import EvaluationBroker
from bacalhau.orchestrator._metrics import SCHEDULING_PASSES
from bacalhau.orchestrator._node_listing import NodeListing
from bacalhau.orchestrator._nodes import NodeDirectory
from bacalhau.orchestrator._plan import Plan
from bacalhau.orchestrator._planner import Planner, Send
from bacalhau.orchestrator._ranking import with_placed
from bacalhau.orchestrator._reputation import node_reputations, with_reputation
from bacalhau.orchestrator._scheduler import schedule
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator.schedulers._shared import later

log = logging.getLogger(__name__)


class EvaluationRunner:
    """Makes, queues and processes evaluations (the orchestrator's scheduling passes)."""

    store: JobStore
    nodes: NodeDirectory
    _broker: EvaluationBroker
    _planner: Planner
    _settings: SchedulerSettings
    _rng: random.Random
    #: Until then (ns) the scheduler treats nodes it does not see as unknown, not absent.
    _settling_until: int
    #: Messages of passes made in place on their way (see :meth:`_dispatch_placed`).
    _dispatching: set[asyncio.Task[None]]

    def _new_eval(self, job: Job, triggered_by: str, wait_until: int = 0) -> Evaluation:
        return later(job, wait_until, now_ns(), triggered_by)

    def _enqueue_new(self, job: Job, triggered_by: str) -> Evaluation:
        return self._enqueue_eval(self._new_eval(job, triggered_by))

    def _enqueue_eval(self, ev: Evaluation) -> Evaluation:
        """Store ``ev`` and queue it for a worker."""
        with self.store.transaction():
            self.store.create_evaluation(ev)
        self._broker.enqueue(ev)
        return ev

    async def _work(self) -> None:
        while True:
            ev = await self._broker.dequeue()
            try:
                await self._process(ev)
            except Exception:
                log.exception("evaluation %s of job %s failed", ev.id, ev.job_id)
            finally:
                self._finish(ev)

    def _finish(self, ev: Evaluation) -> None:
        """``ev`` was processed: its job's next evaluation may go; those it replaced are
        complete."""
        self._broker.ack(ev)
        superseded = self._broker.take_superseded()
        if superseded:
            with self.store.transaction():
                for old in superseded:
                    self.store.set_evaluation_status(old.id, EvaluationStatus.COMPLETE)

    def _plan(self, job: Job, ev: Evaluation) -> Plan:
        """The scheduler's plan for ``job`` now, as evaluation ``ev``."""
        executions = self.store.executions_of(job.id)
        return schedule(
            job,
            executions,
            # Listed only for a placement: most passes look at their executions' nodes alone.
            self._ranked_nodes(),
            ev,
            now=now_ns(),
            settings=self._settings,
            rng=self._rng,
            settling_until=self._settling_until,
        )

    def _ranked_nodes(self) -> NodeListing:
        """The compute nodes as ranking sees them: what this requester placed counts before
        the nodes' records show it, and each node's reputation (verified results) weighs
        its rank. Listed whole on first use; a node looked up before that is built from its
        own records alone."""

        def every() -> list[NodeState]:
            nodes = with_placed(self.nodes.compute_nodes(), self.store.placed())
            return with_reputation(nodes, node_reputations(self.store))

        def one(node_id: str) -> NodeState | None:
            node = self.nodes.compute_node(node_id)
            if node is None:
                return None
            placed = self.store.placed_on(node_id)
            counts = self.store.reputation_of(node_id)
            node = with_placed([node], {node_id: placed} if placed else {})[0]
            reputation = {node_id: NodeReputation(*counts)} if counts else {}
            return with_reputation([node], reputation)[0]

        return NodeListing(every, one)

    async def _process(self, ev: Evaluation) -> None:
        job = self.store.get_job(ev.job_id)
        sends = self._planner.apply(self._plan(job, ev))
        SCHEDULING_PASSES.labels(path="evaluation").inc()
        await self._planner.dispatch(job, sends)

    def _place_now(self, ev: Evaluation) -> bool:
        """Make evaluation ``ev``'s pass at once, in the caller's transaction (a new job's
        submit, the report that freed room for a waiting job): the pass a worker would make
        next (the same store, nodes and scheduler), without a commit and a worker's turn of
        its own. Its job is held in flight meanwhile, as a worker holds it, and what the
        pass planned is sent once the transaction has committed. False when the pass was
        not made (an evaluation of the job waits or runs already) or failed (undone alone):
        the caller then queues the evaluation, which the broker folds into the one it has."""
        if self._broker.is_busy(ev.job_id):
            return False
        self._broker.hold(ev)
        try:
            with self.store.transaction():
                job = self.store.get_job(ev.job_id)
                sends = self._planner.apply(self._plan(job, ev))
        except Exception:
            log.exception("evaluation %s of job %s failed; queueing it", ev.id, ev.job_id)
            self._broker.ack(ev)
            return False
        SCHEDULING_PASSES.labels(path="in_place").inc()
        self._dispatch_placed(ev, job, sends)
        return True

    def _dispatch_placed(self, ev: Evaluation, job: Job, sends: list[Send]) -> None:
        """Send what a pass made in place planned, once the transaction it was made in has
        committed (a node must not be asked to run an execution the store may yet undo)."""

        async def dispatch() -> None:
            try:
                await self._planner.dispatch(job, sends)
            except Exception:
                log.exception("evaluation %s of job %s failed", ev.id, ev.job_id)
            finally:
                self._finish(ev)

        def start() -> None:
            task = asyncio.create_task(dispatch(), name=f"dispatch-{ev.id}")
            self._dispatching.add(task)
            task.add_done_callback(self._dispatching.discard)

        # Undone: nothing is sent, and the job is no longer held in flight.
        self.store.after_commit(start, otherwise=lambda: self._broker.ack(ev))
