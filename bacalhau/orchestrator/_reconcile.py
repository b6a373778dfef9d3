"""Reconciling a compute node's execution report with the job store.

A compute node reports the executions it still holds (under way, or finished with the final
callback not yet delivered; its outbox sends that later) when it first sees this requester or
sees it restarted, when it finds itself declared dead, and now and then. The requester
compares:

- an execution it thinks is under way on that node, that the node does not list, was lost
  (the node restarted without it, or never received it while this requester was down): it
  is failed as ``NodeLost`` and the scheduler places a replacement;
- a listed execution that the requester has already stopped (failed as lost while the node
  was silent, cancelled, or surplus) is cancelled on the node, so a node that comes back
  does not run a replaced execution to completion;
- a listed execution the requester no longer knows is cancelled too. The node lists only the
  executions it holds for this requester, so it was this requester's: its job ended and was
  removed by retention while the node was out of reach (a job stopped then never reached
  it), or the requester lost its store. Nobody would take its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from bacalhau.errors import ExecutionNotFound, NodeLost, RevisionConflict
from bacalhau.models import (
    CancelExecutionRequest,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Failure,
    Job,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._planner import ComputeTransport
from bacalhau.orchestrator._store import JobStore

log = logging.getLogger(__name__)
D = ExecutionDesiredStateType
E = ExecutionStateType

#: Requester-side states in which the node must hold the execution. ``New`` is left out: the
#: ask may not have been sent yet.
_HELD = frozenset({E.ASK_FOR_BID, E.ASK_FOR_BID_ACCEPTED, E.BID_ACCEPTED, E.RUNNING, E.PUBLISHING})
#: Seconds after its last change during which an execution missing from a node's report is
#: not failed: the ask or acceptance may still be on its way to the node.
REPORT_IN_FLIGHT = 10.0
#: Why an execution the requester no longer knows is cancelled on its node.
_FORGOTTEN = (
    "execution was stopped: the requester no longer knows it (its job ended and was removed)"
)


class NodeReconciler:
    """Applies a compute node's execution report to the job store."""

    def __init__(
        self,
        *,
        store: JobStore,
        transport: ComputeTransport,
        enqueue: Callable[[Job, str], object],
        in_flight: float = REPORT_IN_FLIGHT,
    ) -> None:
        """``in_flight``: an execution changed fewer seconds ago than this may still be on
        its way to the node (an ask or an acceptance sent while the node listed what it
        holds), so it is not failed for being absent from the list."""
        self._in_flight_ns = int(in_flight * 1e9)
        self._store = store
        self._transport = transport
        self._enqueue = enqueue

    async def reconcile(self, node_id: str, held: Collection[str]) -> None:
        """Fail what ``node_id`` lost; cancel on it what was stopped meanwhile."""
        held_ids = set(held)
        touched = self._fail_unknown(node_id, held_ids)
        for execution_id in sorted(held_ids):
            try:
                ex = self._store.get_execution(execution_id)
            except ExecutionNotFound:
                log.warning(
                    "node %s still holds execution %s, unknown here: cancelling",
                    node_id,
                    execution_id,
                )
                await self._cancel(node_id, execution_id, _FORGOTTEN)
                continue
            if ex.node_id != node_id or ex.desired_state != D.STOPPED:
                continue
            reason = ex.desired_message or "stopped by the requester"
            log.warning("node %s still holds stopped execution %s: cancelling", node_id, ex.id)
            await self._cancel(node_id, ex.id, f"execution was stopped: {reason}")
        for job_id in sorted(touched):
            self._enqueue(self._store.get_job(job_id), TriggeredBy.NODE_UPDATE)

    async def _cancel(self, node_id: str, execution_id: str, reason: str) -> None:
        try:
            await self._transport.cancel_execution(
                node_id, CancelExecutionRequest(execution_id, reason)
            )
        except Exception as exc:  # the node may be gone again; its next report retries
            log.warning("could not cancel %s on node %s: %s", execution_id, node_id, exc)

    def _fail_unknown(self, node_id: str, held: set[str]) -> set[str]:
        now = now_ns()
        touched: set[str] = set()
        for job_id in self._store.active_jobs_on_node(node_id):
            for ex in self._store.executions_of(job_id):
                if (
                    ex.node_id != node_id
                    or ex.id in held
                    or ex.compute_state not in _HELD
                    or now - ex.modify_time < self._in_flight_ns
                ):
                    continue
                if self._fail(ex, now):
                    touched.add(job_id)
        return touched

    def _fail(self, ex: Execution, now: int) -> bool:
        msg = (
            f"node {ex.node_id} reported its executions without {ex.id}, which was "
            f"{ex.compute_state.label}: it restarted or never received it"
        )
        details = Failure(NodeLost.code, True, flags=(NodeLost.code,)).details(error=False)
        try:
            self._store.update_execution(
                ex.id,
                compute_state=E.FAILED,
                desired_state=D.STOPPED,
                compute_message=msg,
                desired_message=msg,
                compute_details=details,
                expected_states=frozenset({ex.compute_state}),
                expected_revision=ex.revision,
                event=Event(
                    message=msg,
                    topic="Execution",
                    timestamp=now,
                    details={"IsError": "true", "Hint": NodeLost.default_hint, **details},
                ),
            )
        except RevisionConflict:
            return False  # a report arrived meanwhile
        log.warning("%s", msg)
        return True
