"""Changes of the cluster's compute nodes as the orchestrator meets them: a node joined, was
approved or rejected, has room again, or was lost; each evaluates the jobs it concerns."""

from __future__ import annotations

import contextlib
import logging

from bacalhau.errors import NodeNotFound
from bacalhau.models import JobStateType, TriggeredBy
from bacalhau.orchestrator._evaluations import EvaluationRunner
from bacalhau.orchestrator._queue_moves import QueueMoves
from bacalhau.orchestrator._ranking import with_placed
from bacalhau.orchestrator._waiting import queued_jobs_for_node

log = logging.getLogger(__name__)


class NodeEvents(EvaluationRunner):
    """Evaluates the jobs a change of a compute node concerns.

    ``on_capacity_change`` also runs after each execution a node report ends, inside the
    batch transaction of :meth:`ExecutionReports.on_callbacks`: it must not suspend."""

    queue_moves: QueueMoves

    async def _node_changed(self, node_id: str) -> None:
        on_node = set(self.store.active_jobs_on_node(node_id))
        for job_id in on_node:
            self._enqueue_new(self.store.get_job(job_id), TriggeredBy.NODE_UPDATE)
        # Daemon jobs run on every matching node, including one that just joined; a running
        # service short of a replica (one per node) may place it on a node joining or back.
        for job_id in self.store.jobs_in_states([JobStateType.QUEUED, JobStateType.RUNNING]):
            job = self.store.get_job(job_id)
            if job_id not in on_node and (
                job.type == "daemon"
                or (job.type == "service" and job.state == JobStateType.RUNNING)
            ):
                self._enqueue_new(job, TriggeredBy.NODE_UPDATE)
        # A node (re)joining or approved may unblock queued jobs.
        await self.on_capacity_change(node_id)

    async def on_capacity_change(self, node_id: str) -> int:
        """A compute node joined, was approved, reported more room, or ended an execution:
        re-evaluate the queued jobs it may now take, highest priority then oldest first,
        bounded by what it can take (no thundering herd). Returns how many were
        re-evaluated. The node view calls this; so do the execution callbacks."""
        # Work waiting in another node's run queue may move there.
        self.queue_moves.room_changed()
        # Most calls (every execution that ends) find nothing queued: answer that from the
        # state index before building the node list, which costs more.
        queued_ids = self.store.jobs_in_states([JobStateType.QUEUED])
        if not queued_ids:
            return 0
        node = self.nodes.compute_node(node_id)
        if node is None:
            return 0
        # Its room as ranking sees it: with what this requester placed there that its
        # record does not show yet. Without it, a node's late record offers room that its
        # new work already took, and jobs are taken off the queue only to wait again.
        (node,) = with_placed([node], self.store.placed())
        queued = [self.store.get_job(j) for j in queued_ids]
        picked = queued_jobs_for_node(queued, node, limit=self._settings.requeue_per_change)
        for job in picked:
            # Placed now, in the transaction of the change that made room (most often the
            # report of an execution's end), as a new job is in its submit's: a waiting job
            # takes the room without an evaluation of its own to store, queue and commit.
            ev = self._new_eval(job, TriggeredBy.NODE_UPDATE)
            if not self._place_now(ev):
                self._enqueue_eval(ev)
        return len(picked)

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        with contextlib.suppress(NodeNotFound):  # update() reports it
            # A unique prefix names one node, whether the view still holds it or not.
            node_id = self.nodes.get(node_id, known=True).info.node_id
        ok, err = self.nodes.update(node_id, action, message)
        if ok:
            # Approval may unblock queued jobs; rejection must turn away bids awaiting approval.
            await self._node_changed(node_id)
        return ok, err

    async def on_node_lost(self, node_id: str, silent_for: float | None = None) -> None:
        """The one entry point for "this node is dead" (declared dead by gossip, or it left):
        every job with work on it is evaluated, and the scheduler fails that work as
        ``NodeLost`` and places replacements within the job's retry policy. The node is
        usable again once it publishes a newer record; its execution report then makes this
        requester cancel what was replaced (see :class:`NodeReconciler`)."""
        self.nodes.mark_lost(node_id)
        jobs = self.store.active_jobs_on_node(node_id)
        # A node first heard of as already gone (after this requester restarted) went down at
        # a time nobody said: "unknown", not "0.0s ago".
        seen = "unknown" if silent_for is None else f"{silent_for:.1f}s ago"
        log.warning(
            "node %s lost (last known alive: %s): re-scheduling %d job(s)",
            node_id,
            seen,
            len(jobs),
        )
        for job_id in jobs:
            self._enqueue_new(self.store.get_job(job_id), TriggeredBy.NODE_UPDATE)
