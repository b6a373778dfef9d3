"""Domain types of the Bacalhau v1 model, their JSON mapping, validation and state machines.

Pure: nothing here does I/O.
"""

from bacalhau.models._codec import Obj, param
from bacalhau.models._execution import (
    RUN_OUTPUT_LIMIT,
    Evaluation,
    EvaluationStatus,
    Event,
    Execution,
    HistoryType,
    JobHistory,
    RunCommandResult,
    TriggeredBy,
)
from bacalhau.models._ids import new_evaluation_id, new_execution_id, new_job_id, short_id
from bacalhau.models._job import (
    JOB_TYPES,
    InputSource,
    Job,
    LabelSelectorRequirement,
    NetworkConfig,
    NetworkType,
    ResourcesConfig,
    ResultPath,
    SpecConfig,
    Task,
    TimeoutConfig,
)
from bacalhau.models._jobfile import parse_job_document
from bacalhau.models._node import (
    ComputeNodeInfo,
    Connection,
    Membership,
    NodeInfo,
    NodeState,
    NodeType,
)
from bacalhau.models._resources import Resources, format_size, parse_cpu, parse_size
from bacalhau.models._states import (
    DESIRED_TRANSITIONS,
    EXECUTION_TRANSITIONS,
    JOB_TRANSITIONS,
    LOCAL_TRANSITIONS,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobStateType,
    LocalExecutionState,
    check_desired_transition,
    check_execution_transition,
    check_job_transition,
    check_local_transition,
)
from bacalhau.models._time import now_ns, parse_rfc3339_ns, rfc3339_ns
from bacalhau.models._validate import normalise_job, validate_job

__all__ = [
    "DESIRED_TRANSITIONS",
    "EXECUTION_TRANSITIONS",
    "JOB_TRANSITIONS",
    "JOB_TYPES",
    "LOCAL_TRANSITIONS",
    "RUN_OUTPUT_LIMIT",
    "ComputeNodeInfo",
    "Connection",
    "Evaluation",
    "EvaluationStatus",
    "Event",
    "Execution",
    "ExecutionDesiredStateType",
    "ExecutionStateType",
    "HistoryType",
    "InputSource",
    "Job",
    "JobHistory",
    "JobStateType",
    "LabelSelectorRequirement",
    "LocalExecutionState",
    "Membership",
    "NetworkConfig",
    "NetworkType",
    "NodeInfo",
    "NodeState",
    "NodeType",
    "Obj",
    "Resources",
    "ResourcesConfig",
    "ResultPath",
    "RunCommandResult",
    "SpecConfig",
    "Task",
    "TimeoutConfig",
    "TriggeredBy",
    "check_desired_transition",
    "check_execution_transition",
    "check_job_transition",
    "check_local_transition",
    "format_size",
    "new_evaluation_id",
    "new_execution_id",
    "new_job_id",
    "now_ns",
    "param",
    "parse_cpu",
    "parse_job_document",
    "parse_rfc3339_ns",
    "parse_size",
    "rfc3339_ns",
    "short_id",
    "validate_job",
]
