"""Reports that reach the requester after it settled their execution otherwise.

A node declared lost (a partition, a long stall, a requester that could not hear it) may
still run its execution to the end, and its outbox delivers the result once it is heard
again. By then the requester has failed that execution as ``NodeLost`` and placed a
replacement. Two outcomes:

- the job still needs that execution's work (a batch partition nothing else completed yet,
  or an ops job's run on that node) and is not over: the result is **kept**. The node did the
  work; waiting for the replacement would only cost time, or the job if the replacement
  fails. The execution goes from Failed to Completed (the one such move of the state machine,
  ``LATE_RESULT_TRANSITIONS``) and the scheduler stops the replacement as surplus;
- otherwise (the partition completed elsewhere, the job ended, the execution failed for
  another reason, a verified job whose replicas are judged together, a daemon or service
  whose executions never complete) the report is only **told** in the execution's history.
"""

from __future__ import annotations

import contextlib

from bacalhau.errors import NodeLost, RevisionConflict
from bacalhau.models import (
    ERROR_CODE,
    HINT,
    IS_ERROR,
    RETRYABLE,
    Event,
    Execution,
    ExecutionStateType,
    RunResult,
    now_ns,
)
from bacalhau.orchestrator._store import JobStore

E = ExecutionStateType

#: Execution detail set once a late report for it has been told (told once only).
LATE = "LateReport"
#: Execution detail of a lost execution whose late result was kept.
KEPT = "LateResultKept"

#: Details the requester set when it failed the execution as lost; a kept result drops them.
_LOSS_DETAILS = frozenset({ERROR_CODE, RETRYABLE, IS_ERROR, HINT, NodeLost.code})
#: Job types whose executions may complete (a daemon's or service's run is meant not to).
_COMPLETING = frozenset({"batch", "ops"})

__all__ = ["KEPT", "LATE", "keep_late_result", "tell_late_report"]


def keep_late_result(
    store: JobStore, execution_id: str, result: RunResult, *, message: str, comment: str
) -> Execution | None:
    """Keep ``result``, a completion reported for an execution already failed as lost, if
    the job still needs it (see the module). Returns the execution as kept, or None when the
    result is not kept. Call inside a store transaction, with the evaluation that follows."""
    ex = store.get_execution(execution_id)
    if ex.compute_state != E.FAILED or ex.compute_details.get(NodeLost.code) != "true":
        return None
    job = store.get_job(ex.job_id)
    if job.state.is_terminal() or job.verified or job.type not in _COMPLETING:
        return None
    if job.type == "batch" and any(
        other.partition_index == ex.partition_index and other.compute_state == E.COMPLETED
        for other in store.executions_of(ex.job_id)
    ):
        return None  # the partition is done already: the replacement's result stands
    details = {k: v for k, v in ex.compute_details.items() if k not in _LOSS_DETAILS}
    return store.update_execution(
        ex.id,
        compute_state=E.COMPLETED,
        compute_message=comment,
        compute_details={**details, KEPT: "true"},
        published_result=result.published_result,
        run_output=result.run_output,
        expected_revision=ex.revision,
        event=Event(
            message=(
                f"{message} (late: node {ex.node_id} had been declared lost; its result is "
                "kept, as the job still needed it)"
            ),
            topic="Execution",
            timestamp=now_ns(),
            details={LATE: "true", KEPT: "true"},
        ),
    )


def tell_late_report(
    store: JobStore, execution_id: str, reported: ExecutionStateType, outcome: str
) -> None:
    """Say in the history that a report came after the execution was settled otherwise
    (e.g. its node was declared lost and the execution replaced). A repeat of a report
    already told (the node retried), or the node's own report delivered again, adds
    nothing."""
    ex = store.get_execution(execution_id)
    lost = ex.compute_details.get(NodeLost.code) == "true"
    if (ex.compute_state == reported and not lost) or ex.compute_details.get(LATE) == "true":
        return
    if ex.compute_details.get(KEPT) == "true":
        return  # its result was kept: this is that report again
    why = ex.compute_message or ex.desired_message or ex.compute_state.label
    message = (
        f"Late report ignored: node {ex.node_id} reported the execution {outcome}, "
        f"but it was already {ex.compute_state.label.lower()} ({why})"
    )
    # Changed meanwhile: the next report, if any, says it.
    with contextlib.suppress(RevisionConflict):
        store.update_execution(
            ex.id,
            compute_details={**ex.compute_details, LATE: "true"},
            expected_revision=ex.revision,
            event=Event(
                message=message,
                topic="Execution",
                timestamp=now_ns(),
                details={"LateReport": "true"},
            ),
        )
