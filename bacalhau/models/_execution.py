"""Executions, their run output, events, job history and evaluations."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bacalhau.models._codec import Obj
from bacalhau.models._failure import IS_ERROR
from bacalhau.models._job import Job, SpecConfig
from bacalhau.models._resources import Resources
from bacalhau.models._states import (
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobStateType,
)
from bacalhau.models._time import parse_rfc3339_ns, rfc3339_ns

#: ``RunOutput`` keeps only this many bytes of stdout/stderr (the files keep everything).
RUN_OUTPUT_LIMIT = 2048


@dataclass(slots=True)
class RunCommandResult:
    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    exit_code: int = 0
    error_msg: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "Stdout": self.stdout,
            "StdoutTruncated": self.stdout_truncated,
            "stderr": self.stderr,
            "StderrTruncated": self.stderr_truncated,
            "ExitCode": self.exit_code,
            "ErrorMsg": self.error_msg,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunCommandResult:
        o = Obj(data, "RunOutput")
        return cls(
            stdout=o.get_str("Stdout"),
            stdout_truncated=o.get_bool("StdoutTruncated"),
            stderr=o.get_str("stderr"),
            stderr_truncated=o.get_bool("StderrTruncated"),
            exit_code=o.get_int("ExitCode"),
            error_msg=o.get_str("ErrorMsg"),
        )


@dataclass(slots=True)
class Event:
    """Something that happened, as shown in job history."""

    message: str = ""
    topic: str = ""
    timestamp: int = 0  # Unix ns; RFC 3339 on the wire
    details: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Message": self.message,
            "Topic": self.topic,
            "Timestamp": rfc3339_ns(self.timestamp),
        }
        if self.details:
            out["Details"] = dict(self.details)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        o = Obj(data, "Event")
        ts = o.raw("Timestamp")
        return cls(
            message=o.get_str("Message"),
            topic=o.get_str("Topic"),
            timestamp=parse_rfc3339_ns(ts) if isinstance(ts, str) and ts else 0,
            details=o.str_map("Details"),
        )

    @property
    def is_error(self) -> bool:
        return self.details.get(IS_ERROR) == "true"


@dataclass(slots=True)
class Execution:
    """One attempt to run a job on one node, as the requester tracks it."""

    id: str
    job_id: str
    node_id: str
    namespace: str = "default"
    eval_id: str = ""
    name: str = ""
    job: Job | None = None
    allocated: Resources = field(default_factory=Resources)
    task_name: str = "main"
    desired_state: ExecutionDesiredStateType = ExecutionDesiredStateType.PENDING
    desired_message: str = ""
    compute_state: ExecutionStateType = ExecutionStateType.NEW
    compute_message: str = ""
    compute_details: dict[str, str] = field(default_factory=dict)
    published_result: SpecConfig | None = None
    run_output: RunCommandResult | None = None
    previous_execution: str = ""
    next_execution: str = ""
    followup_eval_id: str = ""
    #: Which of the job's ``Count`` partitions this execution runs (0-based; Bacalhau v1.7+).
    partition_index: int = 0
    #: The job version this execution runs (``bacalhau job rerun`` adds versions).
    job_version: int = 0
    revision: int = 1
    create_time: int = 0
    modify_time: int = 0

    def is_active(self) -> bool:
        return not self.compute_state.is_terminal()

    def to_dict(self, *, v152: bool = False, include_job: bool = True) -> dict[str, Any]:
        desired: dict[str, Any] = {"StateType": int(self.desired_state)}
        if self.desired_message:
            desired["Message"] = self.desired_message
        compute: dict[str, Any] = {"StateType": self.compute_state.wire(v152=v152)}
        if self.compute_message:
            compute["Message"] = self.compute_message
        if self.compute_details:
            compute["Details"] = dict(self.compute_details)
        out: dict[str, Any] = {
            "ID": self.id,
            "Namespace": self.namespace,
            "EvalID": self.eval_id,
            "Name": self.name,
            "NodeID": self.node_id,
            "JobID": self.job_id,
            "AllocatedResources": {"Tasks": {self.task_name: self.allocated.to_dict()}},
            "DesiredState": desired,
            "ComputeState": compute,
            "PublishedResult": self.published_result.to_dict() if self.published_result else None,
            "RunOutput": self.run_output.to_dict() if self.run_output else None,
            "PreviousExecution": self.previous_execution,
            "NextExecution": self.next_execution,
            "FollowupEvalID": self.followup_eval_id,
            "PartitionIndex": self.partition_index,
            "JobVersion": self.job_version,
            "Revision": self.revision,
            "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        }
        if include_job and self.job is not None:
            out["Job"] = self.job.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, *, v152: bool = True) -> Execution:
        """The inverse of :meth:`to_dict` (``v152`` picks the ComputeState numbering)."""
        o = Obj(data, "Execution")
        tasks = o.get_obj("AllocatedResources").any_map("Tasks")
        task_name, allocated = next(iter(tasks.items()), ("main", None))
        desired = o.get_obj("DesiredState")
        compute = o.get_obj("ComputeState")
        published = o.raw("PublishedResult")
        run_output = o.raw("RunOutput")
        job = o.raw("Job")
        return cls(
            id=o.get_str("ID"),
            job_id=o.get_str("JobID"),
            node_id=o.get_str("NodeID"),
            namespace=o.get_str("Namespace", "default"),
            eval_id=o.get_str("EvalID"),
            name=o.get_str("Name"),
            job=Job.from_dict(job, path="Job") if job is not None else None,
            allocated=Resources.from_dict(allocated),
            task_name=task_name,
            desired_state=ExecutionDesiredStateType(desired.get_int("StateType")),
            desired_message=desired.get_str("Message"),
            compute_state=ExecutionStateType.from_wire(compute.get_int("StateType"), v152=v152),
            compute_message=compute.get_str("Message"),
            compute_details=compute.str_map("Details"),
            published_result=(
                SpecConfig.from_obj(Obj(published, "PublishedResult"))
                if published is not None
                else None
            ),
            run_output=RunCommandResult.from_dict(run_output) if run_output is not None else None,
            previous_execution=o.get_str("PreviousExecution"),
            next_execution=o.get_str("NextExecution"),
            followup_eval_id=o.get_str("FollowupEvalID"),
            partition_index=o.get_int("PartitionIndex"),
            job_version=o.get_int("JobVersion"),
            revision=o.get_int("Revision", 1),
            create_time=o.get_int("CreateTime"),
            modify_time=o.get_int("ModifyTime"),
        )


class HistoryType:
    JOB = "JobLevel"
    EXECUTION = "ExecutionLevel"


@dataclass(slots=True)
class JobHistory:
    """One history item; state changes are always filled (the v1.4 Python client needs them)."""

    seq_num: int
    type: str
    job_id: str
    event: Event
    time: int  # Unix ns
    new_revision: int = 0
    node_id: str = ""
    execution_id: str = ""
    job_state_previous: JobStateType | None = None
    job_state_new: JobStateType | None = None
    exec_state_previous: ExecutionStateType | None = None
    exec_state_new: ExecutionStateType | None = None
    #: The version of the job the item belongs to (a job-level item: the job's version when
    #: it was written; an execution's: the version the execution runs).
    job_version: int = 0

    def to_dict(self, *, v152: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "SeqNum": self.seq_num,
            "Type": self.type,
            "JobID": self.job_id,
            "JobVersion": self.job_version,
            "NewRevision": self.new_revision,
            "Comment": self.event.message,
            "Event": self.event.to_dict(),
            "Time": rfc3339_ns(self.time),
        }
        if self.type == HistoryType.EXECUTION:
            out["NodeID"] = self.node_id
            out["ExecutionID"] = self.execution_id
            change: dict[str, Any] = {}
            if self.exec_state_previous:
                change["Previous"] = self.exec_state_previous.wire(v152=v152)
            if self.exec_state_new:
                change["New"] = self.exec_state_new.wire(v152=v152)
            out["ExecutionState"] = change
        else:
            job_change: dict[str, Any] = {}
            if self.job_state_previous:
                job_change["Previous"] = self.job_state_previous.wire
            if self.job_state_new:
                job_change["New"] = self.job_state_new.wire
            out["JobState"] = job_change
        return out


class EvaluationStatus(StrEnum):
    """An evaluation's status (Bacalhau's wire spelling)."""

    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELED = "canceled"
    BLOCKED = "blocked"


class TriggeredBy(StrEnum):
    """What made an evaluation (Bacalhau's wire spelling)."""

    JOB_REGISTER = "job-register"
    JOB_CANCEL = "job-cancel"
    JOB_QUEUE = "job-queue"
    JOB_TIMEOUT = "job-timeout"
    EXEC_FAILURE = "exec-failure"
    EXEC_UPDATE = "exec-update"
    EXEC_TIMEOUT = "exec-timeout"
    NODE_UPDATE = "node-update"


@dataclass(slots=True)
class Evaluation:
    """A request to (re)consider a job's executions."""

    id: str
    job_id: str
    namespace: str
    type: str
    triggered_by: str
    priority: int = 0
    status: str = EvaluationStatus.PENDING
    wait_until: int = 0  # Unix ns; 0 = now
    create_time: int = 0
    modify_time: int = 0
