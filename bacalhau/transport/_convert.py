"""Domain records <-> protobuf, in one place.

Everything a node sends or receives goes through these functions; orchestrator and compute
only ever see :mod:`bacalhau.models` types. Each ``*_to_proto`` has a ``*_from_proto`` inverse
and ``from(to(x)) == x`` for every record (the tests check fully populated ones).

One documented loss: plugin params travel as ``google.protobuf.Struct``, i.e. JSON, so numbers
are doubles on the wire. Integral numbers come back as ``int`` (exact up to 2**53, as in any
JSON decoder that Bacalhau's Go side would use).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from bacalhau._proto.v1 import types_pb2 as pb
from bacalhau.errors import InvalidJobSpec, InvalidRequest
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    InputSource,
    Job,
    JobStateType,
    LabelSelectorRequirement,
    NetworkConfig,
    NetworkType,
    PortMapping,
    Resources,
    ResourcesConfig,
    ResultPath,
    RunCommandResult,
    SpecConfig,
    Task,
    TimeoutConfig,
)

_MAX_EXACT_INT = 2**53

# -- plugin params (JSON) ----------------------------------------------------------------------


def _struct_from_dict(params: dict[str, Any], *, where: str) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    try:
        out.update(params)
    except (ValueError, TypeError) as e:
        raise InvalidJobSpec(
            f"{where} must hold only JSON values (strings, numbers, booleans, null, lists, maps)",
            field=where,
        ) from e
    return out


def _value_to_py(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        n = value.number_value
        if n.is_integer() and abs(n) <= _MAX_EXACT_INT:
            return int(n)
        return n
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _dict_from_struct(value.struct_value)
    if kind == "list_value":
        return [_value_to_py(v) for v in value.list_value.values]
    return None


def _dict_from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {k: _value_to_py(v) for k, v in struct.fields.items()}


# -- enums -------------------------------------------------------------------------------------

_NETWORK_TO_PB = {
    NetworkType.NONE: pb.NETWORK_TYPE_NONE,
    NetworkType.FULL: pb.NETWORK_TYPE_FULL,
    NetworkType.HTTP: pb.NETWORK_TYPE_HTTP,
    NetworkType.HOST: pb.NETWORK_TYPE_HOST,
    NetworkType.BRIDGE: pb.NETWORK_TYPE_BRIDGE,
    NetworkType.DEFAULT: pb.NETWORK_TYPE_DEFAULT,
}
_NETWORK_FROM_PB = {v: k for k, v in _NETWORK_TO_PB.items()}
_NETWORK_FROM_PB[pb.NETWORK_TYPE_UNSPECIFIED] = NetworkType.NONE


def _unknown(what: str, value: int) -> InvalidRequest:
    return InvalidRequest(
        f"unknown {what} {value} (sent by a newer version?)",
        hint="upgrade this node to the version of its peers",
        component="Transport",
    )


def _job_state(value: int) -> JobStateType:
    try:
        return JobStateType(value)
    except ValueError:
        raise _unknown("job state", value) from None


def _execution_state(value: int) -> ExecutionStateType:
    try:
        return ExecutionStateType(value)
    except ValueError:
        raise _unknown("execution state", value) from None


def _desired_state(value: int) -> ExecutionDesiredStateType:
    # The proto enum is the model's shifted by one: 0 is UNSPECIFIED (read as pending).
    if value == pb.EXECUTION_DESIRED_STATE_TYPE_UNSPECIFIED:
        return ExecutionDesiredStateType.PENDING
    try:
        return ExecutionDesiredStateType(value - 1)
    except ValueError:
        raise _unknown("desired execution state", value) from None


# -- job ---------------------------------------------------------------------------------------


def spec_config_to_proto(spec: SpecConfig, *, where: str = "Params") -> pb.SpecConfig:
    out = pb.SpecConfig(type=spec.type)
    if spec.params:
        out.params.CopyFrom(_struct_from_dict(spec.params, where=where))
    return out


def spec_config_from_proto(msg: pb.SpecConfig) -> SpecConfig:
    params = _dict_from_struct(msg.params) if msg.HasField("params") else {}
    return SpecConfig(type=msg.type, params=params)


def resources_to_proto(res: Resources) -> pb.Resources:
    return pb.Resources(cpu=res.cpu, memory=res.memory, disk=res.disk, gpu=res.gpu)


def resources_from_proto(msg: pb.Resources) -> Resources:
    return Resources(cpu=msg.cpu, memory=msg.memory, disk=msg.disk, gpu=msg.gpu)


def _task_to_proto(task: Task, where: str, engine_params: dict[str, Any] | None = None) -> pb.Task:
    engine = task.engine if engine_params is None else SpecConfig(task.engine.type, engine_params)
    return pb.Task(
        name=task.name,
        engine=spec_config_to_proto(engine, where=f"{where}.Engine.Params"),
        publisher=spec_config_to_proto(task.publisher, where=f"{where}.Publisher.Params"),
        env=task.env,
        meta=task.meta,
        input_sources=[
            pb.InputSource(
                source=spec_config_to_proto(
                    i.source, where=f"{where}.InputSources[{n}].Source.Params"
                ),
                alias=i.alias,
                target=i.target,
            )
            for n, i in enumerate(task.input_sources)
        ],
        result_paths=[pb.ResultPath(name=r.name, path=r.path) for r in task.result_paths],
        resources=pb.ResourcesConfig(
            cpu=task.resources.cpu,
            memory=task.resources.memory,
            disk=task.resources.disk,
            gpu=task.resources.gpu,
        ),
        network=pb.NetworkConfig(
            type=_NETWORK_TO_PB[task.network.type],
            domains=task.network.domains,
            ports=[
                pb.Port(name=p.name, static=p.static, target=p.target, host_network=p.host_network)
                for p in task.network.ports
            ],
        ),
        timeouts=pb.TimeoutConfig(
            execution_timeout_seconds=task.timeouts.execution_timeout,
            queue_timeout_seconds=task.timeouts.queue_timeout,
            total_timeout_seconds=task.timeouts.total_timeout,
        ),
    )


def _task_from_proto(msg: pb.Task) -> Task:
    network = _NETWORK_FROM_PB.get(msg.network.type)
    if network is None:
        raise _unknown("network type", msg.network.type)
    return Task(
        name=msg.name,
        engine=spec_config_from_proto(msg.engine),
        publisher=spec_config_from_proto(msg.publisher),
        env=dict(msg.env),
        meta=dict(msg.meta),
        input_sources=[
            InputSource(source=spec_config_from_proto(i.source), alias=i.alias, target=i.target)
            for i in msg.input_sources
        ],
        result_paths=[ResultPath(name=r.name, path=r.path) for r in msg.result_paths],
        resources=ResourcesConfig(
            cpu=msg.resources.cpu,
            memory=msg.resources.memory,
            disk=msg.resources.disk,
            gpu=msg.resources.gpu,
        ),
        network=NetworkConfig(
            type=network,
            domains=list(msg.network.domains),
            ports=[
                PortMapping(
                    name=p.name, static=p.static, target=p.target, host_network=p.host_network
                )
                for p in msg.network.ports
            ],
        ),
        timeouts=TimeoutConfig(
            execution_timeout=msg.timeouts.execution_timeout_seconds,
            queue_timeout=msg.timeouts.queue_timeout_seconds,
            total_timeout=msg.timeouts.total_timeout_seconds,
        ),
    )


def job_to_proto(job: Job, *, engine_params: dict[str, Any] | None = None) -> pb.Job:
    """``job`` on the wire; with ``engine_params`` in place of its first task's engine
    params (the job itself is left as it is)."""
    return pb.Job(
        id=job.id,
        name=job.name,
        namespace=job.namespace,
        type=job.type,
        priority=job.priority,
        count=job.count,
        constraints=[
            pb.LabelSelectorRequirement(key=c.key, operator=c.operator, values=c.values)
            for c in job.constraints
        ],
        meta=job.meta,
        labels=job.labels,
        tasks=[
            _task_to_proto(t, f"Tasks[{n}]", engine_params if n == 0 else None)
            for n, t in enumerate(job.tasks)
        ],
        state=pb.JobStateType.ValueType(int(job.state)),
        state_message=job.state_message,
        state_details=job.state_details,
        version=job.version,
        revision=job.revision,
        create_time_unix_nano=job.create_time,
        modify_time_unix_nano=job.modify_time,
    )


def job_from_proto(msg: pb.Job) -> Job:
    return Job(
        id=msg.id,
        name=msg.name,
        namespace=msg.namespace,
        type=msg.type,
        priority=msg.priority,
        count=msg.count,
        constraints=[
            LabelSelectorRequirement(key=c.key, operator=c.operator, values=list(c.values))
            for c in msg.constraints
        ],
        meta=dict(msg.meta),
        labels=dict(msg.labels),
        tasks=[_task_from_proto(t) for t in msg.tasks],
        state=_job_state(msg.state),
        state_message=msg.state_message,
        state_details=dict(msg.state_details),
        version=msg.version,
        revision=msg.revision,
        create_time=msg.create_time_unix_nano,
        modify_time=msg.modify_time_unix_nano,
    )


# -- execution ---------------------------------------------------------------------------------


def run_output_to_proto(out: RunCommandResult) -> pb.RunCommandResult:
    return pb.RunCommandResult(
        stdout=out.stdout,
        stdout_truncated=out.stdout_truncated,
        stderr=out.stderr,
        stderr_truncated=out.stderr_truncated,
        exit_code=out.exit_code,
        error_msg=out.error_msg,
    )


def run_output_from_proto(msg: pb.RunCommandResult) -> RunCommandResult:
    return RunCommandResult(
        stdout=msg.stdout,
        stdout_truncated=msg.stdout_truncated,
        stderr=msg.stderr,
        stderr_truncated=msg.stderr_truncated,
        exit_code=msg.exit_code,
        error_msg=msg.error_msg,
    )


def event_to_proto(event: Event) -> pb.Event:
    return pb.Event(
        message=event.message,
        topic=event.topic,
        timestamp_unix_nano=event.timestamp,
        details=event.details,
    )


def event_from_proto(msg: pb.Event) -> Event:
    return Event(
        message=msg.message,
        topic=msg.topic,
        timestamp=msg.timestamp_unix_nano,
        details=dict(msg.details),
    )


def execution_to_proto(
    ex: Execution, *, engine_params: dict[str, Any] | None = None
) -> pb.Execution:
    """``ex`` on the wire, its job's first task with ``engine_params`` if given."""
    out = pb.Execution(
        id=ex.id,
        job_id=ex.job_id,
        node_id=ex.node_id,
        namespace=ex.namespace,
        eval_id=ex.eval_id,
        name=ex.name,
        allocated=resources_to_proto(ex.allocated),
        task_name=ex.task_name,
        desired_state=pb.ExecutionDesiredStateType.ValueType(int(ex.desired_state) + 1),
        desired_message=ex.desired_message,
        compute_state=pb.ExecutionStateType.ValueType(int(ex.compute_state)),
        compute_message=ex.compute_message,
        compute_details=ex.compute_details,
        previous_execution=ex.previous_execution,
        next_execution=ex.next_execution,
        followup_eval_id=ex.followup_eval_id,
        partition_index=ex.partition_index,
        job_version=ex.job_version,
        revision=ex.revision,
        create_time_unix_nano=ex.create_time,
        modify_time_unix_nano=ex.modify_time,
    )
    if ex.job is not None:
        out.job.CopyFrom(job_to_proto(ex.job, engine_params=engine_params))
    if ex.published_result is not None:
        out.published_result.CopyFrom(
            spec_config_to_proto(ex.published_result, where="PublishedResult.Params")
        )
    if ex.run_output is not None:
        out.run_output.CopyFrom(run_output_to_proto(ex.run_output))
    return out


def execution_from_proto(msg: pb.Execution) -> Execution:
    return Execution(
        id=msg.id,
        job_id=msg.job_id,
        node_id=msg.node_id,
        namespace=msg.namespace,
        eval_id=msg.eval_id,
        name=msg.name,
        job=job_from_proto(msg.job) if msg.HasField("job") else None,
        allocated=resources_from_proto(msg.allocated),
        task_name=msg.task_name,
        desired_state=_desired_state(msg.desired_state),
        desired_message=msg.desired_message,
        compute_state=_execution_state(msg.compute_state),
        compute_message=msg.compute_message,
        compute_details=dict(msg.compute_details),
        published_result=(
            spec_config_from_proto(msg.published_result)
            if msg.HasField("published_result")
            else None
        ),
        run_output=run_output_from_proto(msg.run_output) if msg.HasField("run_output") else None,
        previous_execution=msg.previous_execution,
        next_execution=msg.next_execution,
        followup_eval_id=msg.followup_eval_id,
        partition_index=msg.partition_index,
        job_version=msg.job_version,
        revision=msg.revision,
        create_time=msg.create_time_unix_nano,
        modify_time=msg.modify_time_unix_nano,
    )
