"""The REST API's answers as the client's types: a job with its history and executions, a
submit's answer, and whether a long-running job has started."""

from __future__ import annotations

import re
from typing import Any

from bacalhau.client._decode import history_from_dict
from bacalhau.client._types import JobDetails, SubmitResponse
from bacalhau.models import Execution, ExecutionStateType, Job, JobStateType, Obj

__all__ = ["LONG_RUNNING_JOB_TYPES", "is_started", "items_of", "job_details", "submitted"]


def items_of(data: Any, key: str = "Items") -> list[Any]:
    """The list under ``key`` of an answer (none when the answer is not an object)."""
    if not isinstance(data, dict):
        return []
    items = Obj(data, "").get_list(key)
    return items


def job_details(data: dict[str, Any]) -> JobDetails:
    """The body of ``GET /jobs/{id}`` (or a finished job's ``Details`` in a history answer)."""
    o = Obj(data, "")
    return JobDetails(
        job=Job.from_dict(o.raw("Job"), path="Job"),
        history=[history_from_dict(h) for h in items_of(o.raw("History"))],
        executions=[Execution.from_dict(e) for e in items_of(o.raw("Executions"))],
    )


def submitted(data: Any) -> SubmitResponse:
    """The answer of a submit."""
    o = Obj(data, "")
    return SubmitResponse(
        job_id=o.get_str("JobID"),
        evaluation_id=o.get_str("EvaluationID"),
        warnings=o.str_list("Warnings"),
    )


#: Job types whose executions run until stopped: waiting for them ends once they run.
LONG_RUNNING_JOB_TYPES = ("daemon", "service")
#: Execution states in which a node has been told to run it (the requester hears of the
#: run itself only when it ends).
_STARTED = (ExecutionStateType.BID_ACCEPTED, ExecutionStateType.RUNNING)
_STARTING = (
    ExecutionStateType.NEW,
    ExecutionStateType.ASK_FOR_BID,
    ExecutionStateType.ASK_FOR_BID_ACCEPTED,
)


#: A running service's message while replicas wait for a node ("1 of 3 replicas waiting...").
_REPLICAS_WAITING = re.compile(r"(\d+) of \d+ replicas ")
#: How the message of a job queued until a node takes it begins.
_WAITING_FOR_A_NODE = "waiting for a node"


def is_started(details: JobDetails) -> bool:
    """Whether waiting for a long-running job is over: it is Running with its executions
    started (every replica of a service but those the job says wait for a node; a daemon on
    every node it was placed on, none still bidding); or it is queued waiting for a node, with
    nothing bidding (it may wait as long as no node takes it: the caller says so rather than
    wait with it); or it ended."""
    job = details.job
    if job.state.is_terminal():
        return True
    if job.state == JobStateType.QUEUED:
        queued = job.state_message.startswith(_WAITING_FOR_A_NODE)
        return queued and not any(e.compute_state in _STARTING for e in details.executions)
    if job.state != JobStateType.RUNNING:
        return False
    started = [e for e in details.executions if e.compute_state in _STARTED]
    if any(e.compute_state in _STARTING for e in details.executions):
        return False
    needed = max(job.count, 1) if job.type == "service" else 1
    if job.type == "service" and (waiting := _REPLICAS_WAITING.match(job.state_message)):
        # Those may wait as long as the service runs (no node for them yet): the others run.
        needed = max(1, needed - int(waiting.group(1)))
    return len(started) >= needed
