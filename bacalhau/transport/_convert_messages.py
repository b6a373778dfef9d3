"""bprotocol messages <-> protobuf (the records inside them are in :mod:`._convert`)."""

from __future__ import annotations

import time
from typing import TypeAlias

from bacalhau._proto.v1 import compute_pb2, logs_pb2, orchestrator_pb2
from bacalhau._wall_steps import elapsed_ns
from bacalhau.errors import BacalhauError, InternalError, InvalidRequest
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Execution,
    ExecutionReport,
    LogChunk,
    LogRequest,
    LogStream,
    QueuedExecution,
    RunResult,
    engine_params_with_module_url,
    entry_module_url,
    is_shared_module_url,
    module_digest,
    module_reference,
)
from bacalhau.transport._convert import (
    event_from_proto,
    event_to_proto,
    execution_from_proto,
    execution_to_proto,
    run_output_from_proto,
    run_output_to_proto,
    spec_config_from_proto,
    spec_config_to_proto,
)
from bacalhau.transport._errors import error_of_code

# -- requester -> compute ----------------------------------------------------------------------
#
#: The longest answer linger an ask can carry (uint32 microseconds; a minute is far beyond use).
_MAX_LINGER_US = 60_000_000

# Each converts to the signed payload; ``requester_node_id`` is the sender (the signer) and
# ``compute_node_id`` the receiver. The receiver checks both before reading the rest.


def ask_for_bid_to_proto(
    req: AskForBidRequest, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.BidAsk:
    """The signed payload of an ask; a large inline entry module goes by reference (see
    :mod:`bacalhau.models._modules`): the compute node fetches it with GetModule."""
    execution = req.execution
    params = None
    if execution.job is not None:
        url = entry_module_url(execution.job)
        if is_shared_module_url(url):
            # Swapped in the params converted: copying the job to swap it cost more than the
            # rest of the conversion, and converting the URL, then replacing it, a third.
            reference = module_reference(module_digest(url))
            params = engine_params_with_module_url(execution.job.tasks[0].engine.params, reference)
    return compute_pb2.BidAsk(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution=execution_to_proto(execution, engine_params=params),
        wait_for_approval=req.wait_for_approval,
        answer_linger_us=min(_MAX_LINGER_US, max(0, round(req.answer_linger * 1_000_000))),
        applied_callbacks=req.applied_callbacks,
        sent_unix_nano=_sent_in_frame_of(execution),
    )


def _sent_in_frame_of(execution: Execution) -> int:
    """Now, on the clock that stamped the job's create time: the wall clock less the forward
    steps it made since (see :mod:`bacalhau._wall_steps`), so that the compute node's offset
    does not count a step as time the job has spent."""
    now = time.time_ns()
    job = execution.job
    if job is None or job.create_time <= 0:
        return now
    return job.create_time + elapsed_ns(job.create_time, now)


def ask_for_bid_from_proto(msg: compute_pb2.BidAsk) -> AskForBidRequest:
    """The ask, with how far this node's clock is from the sender's, measured on receipt."""
    sent = msg.sent_unix_nano
    return AskForBidRequest(
        execution=execution_from_proto(msg.execution),
        wait_for_approval=msg.wait_for_approval,
        answer_linger=msg.answer_linger_us / 1_000_000,
        applied_callbacks=tuple(msg.applied_callbacks),
        clock_offset_ns=time.time_ns() - sent if sent > 0 else 0,
    )


def bid_accepted_to_proto(
    decision: BidDecision, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.BidAcceptance:
    return compute_pb2.BidAcceptance(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution_id=decision.execution_id,
        justification=decision.justification,
    )


def bid_rejected_to_proto(
    decision: BidDecision, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.BidRejection:
    return compute_pb2.BidRejection(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution_id=decision.execution_id,
        justification=decision.justification,
    )


def bid_decision_from_proto(
    msg: compute_pb2.BidAcceptance | compute_pb2.BidRejection,
) -> BidDecision:
    # The signed message type, not a field, says which decision it is.
    return BidDecision(
        execution_id=msg.execution_id,
        accepted=isinstance(msg, compute_pb2.BidAcceptance),
        justification=msg.justification,
    )


def cancel_to_proto(
    req: CancelExecutionRequest, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.ExecutionCancellation:
    return compute_pb2.ExecutionCancellation(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution_id=req.execution_id,
        justification=req.justification,
    )


def cancel_from_proto(
    msg: compute_pb2.ExecutionCancellation | compute_pb2.ExecutionWithdrawal,
) -> CancelExecutionRequest:
    """A cancellation's, or a withdrawal's (the same fields, signed as another message)."""
    return CancelExecutionRequest(execution_id=msg.execution_id, justification=msg.justification)


def withdrawal_to_proto(
    req: CancelExecutionRequest, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.ExecutionWithdrawal:
    return compute_pb2.ExecutionWithdrawal(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution_id=req.execution_id,
        justification=req.justification,
    )


def log_request_to_proto(
    req: LogRequest, *, requester_node_id: str, compute_node_id: str
) -> compute_pb2.LogStreamAsk:
    return compute_pb2.LogStreamAsk(
        requester_node_id=requester_node_id,
        compute_node_id=compute_node_id,
        execution_id=req.execution_id,
        follow=req.follow,
        tail=req.tail,
        stdout_from=req.stdout_from,
        stderr_from=req.stderr_from,
    )


def log_request_from_proto(msg: compute_pb2.LogStreamAsk) -> LogRequest:
    return LogRequest(
        execution_id=msg.execution_id,
        follow=msg.follow,
        tail=max(msg.tail, 0),
        stdout_from=max(msg.stdout_from, 0),
        stderr_from=max(msg.stderr_from, 0),
    )


def log_chunk_to_proto(chunk: LogChunk) -> compute_pb2.StreamLogsResponse:
    return compute_pb2.StreamLogsResponse(
        stream=logs_pb2.LogStreamType.ValueType(int(chunk.stream)),
        offset=chunk.offset,
        data=chunk.data,
        timestamp_unix_nano=chunk.timestamp_ns,
    )


def log_chunk_from_proto(msg: compute_pb2.StreamLogsResponse) -> LogChunk:
    # Anything but stdout is shown as stderr: an unknown stream is still output.
    stream = LogStream.STDOUT if int(msg.stream) == LogStream.STDOUT else LogStream.STDERR
    return LogChunk(stream, msg.offset, msg.data, msg.timestamp_unix_nano)


# -- compute -> requester ----------------------------------------------------------------------


def bid_result_to_proto(res: BidResult) -> orchestrator_pb2.BidResult:
    return orchestrator_pb2.BidResult(
        execution_id=res.execution_id,
        job_id=res.job_id,
        node_id=res.node_id,
        accepted=res.accepted,
        event=event_to_proto(res.event),
    )


def bid_result_from_proto(msg: orchestrator_pb2.BidResult) -> BidResult:
    return BidResult(
        execution_id=msg.execution_id,
        job_id=msg.job_id,
        node_id=msg.node_id,
        accepted=msg.accepted,
        event=event_from_proto(msg.event),
    )


def run_result_to_proto(res: RunResult) -> orchestrator_pb2.RunResult:
    return orchestrator_pb2.RunResult(
        execution_id=res.execution_id,
        job_id=res.job_id,
        node_id=res.node_id,
        published_result=spec_config_to_proto(res.published_result, where="PublishedResult.Params"),
        run_output=run_output_to_proto(res.run_output),
        record_version=res.record_version,
    )


def run_result_from_proto(msg: orchestrator_pb2.RunResult) -> RunResult:
    return RunResult(
        execution_id=msg.execution_id,
        job_id=msg.job_id,
        node_id=msg.node_id,
        published_result=spec_config_from_proto(msg.published_result),
        run_output=run_output_from_proto(msg.run_output),
        record_version=msg.record_version,
    )


def compute_failure_to_proto(failure: ComputeFailure) -> orchestrator_pb2.ComputeFailure:
    return orchestrator_pb2.ComputeFailure(
        execution_id=failure.execution_id,
        job_id=failure.job_id,
        node_id=failure.node_id,
        event=event_to_proto(failure.event),
        record_version=failure.record_version,
    )


def compute_failure_from_proto(msg: orchestrator_pb2.ComputeFailure) -> ComputeFailure:
    return ComputeFailure(
        execution_id=msg.execution_id,
        job_id=msg.job_id,
        node_id=msg.node_id,
        event=event_from_proto(msg.event),
        record_version=msg.record_version,
    )


def execution_report_to_proto(report: ExecutionReport) -> orchestrator_pb2.ExecutionReport:
    return orchestrator_pb2.ExecutionReport(
        node_id=report.node_id,
        execution_ids=list(report.execution_ids),
        queued=[
            orchestrator_pb2.QueuedExecution(
                execution_id=q.execution_id, waited_ms=max(0, int(q.waited * 1000))
            )
            for q in report.queued
        ],
    )


def execution_report_from_proto(msg: orchestrator_pb2.ExecutionReport) -> ExecutionReport:
    return ExecutionReport(
        node_id=msg.node_id,
        execution_ids=list(msg.execution_ids),
        queued=[QueuedExecution(q.execution_id, q.waited_ms / 1000) for q in msg.queued],
    )


# -- callback batches (compute -> requester) ---------------------------------------------------

#: One callback of a batch, as the transport's handlers and clients see it.
CallbackMessage: TypeAlias = BidResult | RunResult | ComputeFailure


def callback_item_to_proto(message: CallbackMessage) -> orchestrator_pb2.CallbackItem:
    if isinstance(message, BidResult):
        return orchestrator_pb2.CallbackItem(bid_result=bid_result_to_proto(message))
    if isinstance(message, RunResult):
        return orchestrator_pb2.CallbackItem(run_result=run_result_to_proto(message))
    return orchestrator_pb2.CallbackItem(compute_failure=compute_failure_to_proto(message))


def callback_item_from_proto(item: orchestrator_pb2.CallbackItem) -> CallbackMessage:
    """The item's callback; :class:`InvalidRequest` for an item that holds none."""
    kind = item.WhichOneof("callback")
    if kind == "bid_result":
        return bid_result_from_proto(item.bid_result)
    if kind == "run_result":
        return run_result_from_proto(item.run_result)
    if kind == "compute_failure":
        return compute_failure_from_proto(item.compute_failure)
    raise InvalidRequest("a batched callback holds no callback", component="Transport")


def callback_outcome_to_proto(refusal: BacalhauError | None) -> orchestrator_pb2.CallbackOutcome:
    if refusal is None:
        return orchestrator_pb2.CallbackOutcome(accepted=True)
    return orchestrator_pb2.CallbackOutcome(
        error_code=refusal.code, message=refusal.message, hint=refusal.hint
    )


def callback_outcome_from_proto(msg: orchestrator_pb2.CallbackOutcome) -> BacalhauError | None:
    """None for an applied item, else the error the requester refused it with."""
    if msg.accepted:
        return None
    return error_of_code(msg.error_code or InternalError.code, msg.message, hint=msg.hint or None)
