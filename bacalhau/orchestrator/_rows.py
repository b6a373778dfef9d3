"""Row codecs of the job store: the internal, compact JSON kept in SQLite.

Not a wire format (the wire shapes live in :mod:`bacalhau.models`); free to change with a
schema migration.
"""

from __future__ import annotations

from typing import Any

from bacalhau.models import (
    Evaluation,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobHistory,
    JobStateType,
    Resources,
    RunCommandResult,
    SpecConfig,
)


def execution_to_row(ex: Execution) -> dict[str, Any]:
    return {
        "id": ex.id,
        "job_id": ex.job_id,
        "node_id": ex.node_id,
        "namespace": ex.namespace,
        "eval_id": ex.eval_id,
        "name": ex.name,
        "task": ex.task_name,
        "alloc": ex.allocated.to_dict(),
        "ds": int(ex.desired_state),
        "dm": ex.desired_message,
        "cs": int(ex.compute_state),
        "cm": ex.compute_message,
        "cd": ex.compute_details,
        "pr": ex.published_result.to_dict() if ex.published_result else None,
        "ro": ex.run_output.to_dict() if ex.run_output else None,
        "prev": ex.previous_execution,
        "next": ex.next_execution,
        "fe": ex.followup_eval_id,
        "pi": ex.partition_index,
        "jv": ex.job_version,
        "rev": ex.revision,
        "ct": ex.create_time,
        "mt": ex.modify_time,
    }


def execution_from_row(d: dict[str, Any]) -> Execution:
    pr = d.get("pr")
    ro = d.get("ro")
    return Execution(
        id=d["id"],
        job_id=d["job_id"],
        node_id=d["node_id"],
        namespace=d["namespace"],
        eval_id=d["eval_id"],
        name=d["name"],
        task_name=d["task"],
        allocated=Resources.from_dict(d["alloc"]),
        desired_state=ExecutionDesiredStateType(d["ds"]),
        desired_message=d["dm"],
        compute_state=ExecutionStateType(d["cs"]),
        compute_message=d["cm"],
        compute_details=dict(d["cd"]),
        published_result=SpecConfig(type=pr["Type"], params=pr.get("Params", {})) if pr else None,
        run_output=RunCommandResult.from_dict(ro) if ro else None,
        previous_execution=d["prev"],
        next_execution=d["next"],
        followup_eval_id=d["fe"],
        partition_index=d.get("pi", 0),
        job_version=d.get("jv", 0),
        revision=d["rev"],
        create_time=d["ct"],
        modify_time=d["mt"],
    )


def history_to_row(h: JobHistory) -> dict[str, Any]:
    return {
        "type": h.type,
        "time": h.time,
        "rev": h.new_revision,
        "node": h.node_id,
        "exec": h.execution_id,
        "ev": {
            "m": h.event.message,
            "t": h.event.topic,
            "ts": h.event.timestamp,
            "d": h.event.details,
        },
        "jp": int(h.job_state_previous) if h.job_state_previous is not None else None,
        "jn": int(h.job_state_new) if h.job_state_new is not None else None,
        "ep": int(h.exec_state_previous) if h.exec_state_previous is not None else None,
        "en": int(h.exec_state_new) if h.exec_state_new is not None else None,
        "ver": h.job_version,
    }


def history_from_row(job_id: str, seq: int, d: dict[str, Any]) -> JobHistory:
    ev = d["ev"]
    return JobHistory(
        seq_num=seq,
        type=d["type"],
        job_id=job_id,
        event=Event(message=ev["m"], topic=ev["t"], timestamp=ev["ts"], details=dict(ev["d"])),
        time=d["time"],
        new_revision=d["rev"],
        node_id=d["node"],
        execution_id=d["exec"],
        job_state_previous=JobStateType(d["jp"]) if d["jp"] is not None else None,
        job_state_new=JobStateType(d["jn"]) if d["jn"] is not None else None,
        exec_state_previous=ExecutionStateType(d["ep"]) if d["ep"] is not None else None,
        exec_state_new=ExecutionStateType(d["en"]) if d["en"] is not None else None,
        # Items written before they carried it belong to the version the job then had;
        # stores of that time numbered a job's first version 0.
        job_version=d.get("ver", 0),
    )


def eval_to_row(ev: Evaluation) -> dict[str, Any]:
    return {
        "id": ev.id,
        "job_id": ev.job_id,
        "ns": ev.namespace,
        "type": ev.type,
        "by": ev.triggered_by,
        "prio": ev.priority,
        "status": ev.status,
        "wait": ev.wait_until,
        "ct": ev.create_time,
        "mt": ev.modify_time,
    }


def eval_from_row(d: dict[str, Any]) -> Evaluation:
    return Evaluation(
        id=d["id"],
        job_id=d["job_id"],
        namespace=d["ns"],
        type=d["type"],
        triggered_by=d["by"],
        priority=d["prio"],
        status=d["status"],
        wait_until=d["wait"],
        create_time=d["ct"],
        modify_time=d["mt"],
    )
