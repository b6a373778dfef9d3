"""Models <-> the public gRPC API's messages (``proto/bacalhau/v1/api.proto``).

Jobs, executions, history items, nodes and results travel as their Bacalhau v1 JSON (the
documents the REST edge writes), beside the structured fields clients select on; the JSON is
encoded here exactly as REST encodes it. Execution states use the v1.5.2+ numbering (0-11):
there are no older gRPC clients to stay compatible with.
"""

from __future__ import annotations

import json
from typing import Any

from bacalhau._proto.v1 import api_pb2, logs_pb2
from bacalhau.api._job_size import check_job_size
from bacalhau.errors import InvalidJobSpec, InvalidRequest
from bacalhau.models import (
    Execution,
    Job,
    JobHistory,
    LogChunk,
    LogStream,
    NodeInfo,
    NodeState,
    SpecConfig,
    check_document,
)

_LOG_STREAMS = {
    LogStream.STDOUT: logs_pb2.LOG_STREAM_TYPE_STDOUT,
    LogStream.STDERR: logs_pb2.LOG_STREAM_TYPE_STDERR,
}


def to_json(body: Any) -> str:
    """Compact JSON as the REST edge writes it (never HTML-escaped, non-ASCII kept)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def job_from_request(
    request: api_pb2.SubmitJobRequest | api_pb2.DiffJobRequest, *, max_job_size: int
) -> Job:
    """The job of a submission (or of a diff), decoded and checked as the REST edge decodes
    ``{"Job": ...}`` (errors name the field at fault), refused when larger than a node of
    ``max_job_size`` takes."""
    text = request.job_json
    # Its UTF-8 length, without encoding a short job: no character takes more than 4 bytes.
    size = len(text) if len(text) * 4 <= max_job_size else len(text.encode("utf-8", "replace"))
    check_job_size(size, max_job_size, field="job_json")
    if not text.strip():
        raise InvalidJobSpec(
            "the request has no job", field="job_json", hint="send the job's v1 JSON in job_json"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            f"job_json is not valid JSON: {type(exc).__name__}: {exc}"[:300],
            hint="send the job as a Bacalhau v1 JSON object",
            details={"Field": "job_json"},
        ) from None
    if not isinstance(data, dict):
        raise InvalidJobSpec("the job must be a JSON object", field="job_json")
    if _is_wrapped(data):
        raise InvalidJobSpec(
            'job_json holds a {"Job": ...} wrapper, not a job',
            field="job_json",
            hint='give the job itself in job_json: what REST\'s {"Job": ...} holds',
        )
    check_document(data)
    job = Job.from_dict(data)
    if request.namespace and not job.namespace:
        job.namespace = request.namespace
    return job


def _is_wrapped(data: dict[str, Any]) -> bool:
    """Whether ``data`` is REST's body (``{"Job": {...}}``) rather than a job: its one key
    is ``Job`` (any case) holding an object."""
    if len(data) != 1:
        return False
    ((key, value),) = data.items()
    return str(key).lower() == "job" and isinstance(value, dict)


def job_document(job: Job) -> api_pb2.JobDocument:
    return api_pb2.JobDocument(
        id=job.id,
        name=job.name,
        namespace=job.namespace,
        type=job.type,
        state=job.state.wire,
        state_message=job.state_message,
        version=job.version,
        revision=job.revision,
        create_time=job.create_time,
        modify_time=job.modify_time,
        job_json=to_json(job.to_dict()),
    )


def execution_document(execution: Execution) -> api_pb2.ExecutionDocument:
    return api_pb2.ExecutionDocument(
        id=execution.id,
        job_id=execution.job_id,
        node_id=execution.node_id,
        compute_state=execution.compute_state.label,
        execution_json=to_json(execution.to_dict(v152=True, include_job=False)),
    )


def history_item(item: JobHistory) -> api_pb2.HistoryItem:
    return api_pb2.HistoryItem(seq_num=item.seq_num, item_json=to_json(item.to_dict(v152=True)))


def result_json(result: SpecConfig) -> str:
    return to_json(result.to_dict())


def log_chunk(chunk: LogChunk) -> api_pb2.StreamJobLogsResponse:
    return api_pb2.StreamJobLogsResponse(
        stream=_LOG_STREAMS.get(chunk.stream, logs_pb2.LOG_STREAM_TYPE_UNSPECIFIED),
        offset=chunk.offset,
        data=bytes(chunk.data),
        timestamp_ns=chunk.timestamp_ns,
        execution_id=chunk.execution_id,
    )


def node_document(node: NodeState, body: dict[str, Any] | None = None) -> api_pb2.NodeDocument:
    """``body``: the node's JSON when the caller has already built (and extended) it."""
    return api_pb2.NodeDocument(
        id=node.info.node_id,
        node_type=node.info.node_type.value,
        membership=node.membership.value,
        connection=node.connection.value,
        node_json=to_json(body if body is not None else node.to_dict()),
    )


def node_info(info: NodeInfo) -> api_pb2.NodeInfoResponse:
    return api_pb2.NodeInfoResponse(
        node_id=info.node_id, node_type=info.node_type.value, node_json=to_json(info.to_dict())
    )
