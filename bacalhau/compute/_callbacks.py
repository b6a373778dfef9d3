"""What a compute node says back to the requester, and how it is kept until delivered.

:class:`OrchestratorCallbacks` is the compute -> requester half of bprotocol; transport
implements it structurally (the composition root adapts a client to it). Every callback is
first written to the execution store's outbox (see :mod:`bacalhau.compute._outbox`), so it
survives a lost connection or a restart; :func:`encode_callback` / :func:`decode_callback` are
that outbox's JSON mapping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from bacalhau._json import dumps_text
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    Event,
    RunCommandResult,
    RunResult,
    SpecConfig,
)

#: One message for the requester.
Callback: TypeAlias = BidResult | RunResult | ComputeFailure


@runtime_checkable
class OrchestratorCallbacks(Protocol):
    """Compute -> requester callbacks (bid answers, run results, failures), several per call.

    :meth:`deliver_callbacks` sends the first of ``callbacks`` (at least one; as many as fit
    in one call) in their order, and returns one outcome per callback sent: None when the
    requester applied it, else the error it was refused with (a non-retryable
    :class:`~bacalhau.errors.BacalhauError`: the requester answered no; anything else may
    pass). The call raises :class:`~bacalhau.errors.Unavailable` (or any retryable error)
    when the requester cannot be reached, and a non-retryable
    :class:`~bacalhau.errors.BacalhauError` when it refused the call as a whole.
    """

    async def deliver_callbacks(
        self, requester_id: str, callbacks: Sequence[Callback]
    ) -> Sequence[BaseException | None]: ...


def encode_callback(message: Callback) -> tuple[str, str]:
    """``(kind, json)`` for the outbox table."""
    head: dict[str, Any] = {
        "ExecutionID": message.execution_id,
        "JobID": message.job_id,
        "NodeID": message.node_id,
    }
    if isinstance(message, BidResult):
        body = {**head, "Accepted": message.accepted, "Event": message.event.to_dict()}
        return "BidResult", dumps_text(body)
    if isinstance(message, RunResult):
        body = {
            **head,
            "PublishedResult": message.published_result.to_dict(),
            "RunOutput": message.run_output.to_dict(),
            "RecordVersion": message.record_version,
        }
        return "RunResult", dumps_text(body)
    body = {**head, "Event": message.event.to_dict(), "RecordVersion": message.record_version}
    return "ComputeFailure", dumps_text(body)


def decode_callback(kind: str, text: str) -> Callback:
    """The inverse of :func:`encode_callback`."""
    # Our own JSON, written by encode_callback: exact keys, no case folding needed.
    data = json.loads(text)
    ids = {
        "execution_id": str(data["ExecutionID"]),
        "job_id": str(data["JobID"]),
        "node_id": str(data["NodeID"]),
    }
    if kind == "BidResult":
        event = Event.from_dict(data["Event"])
        return BidResult(**ids, accepted=bool(data["Accepted"]), event=event)
    if kind == "RunResult":
        spec = data["PublishedResult"]
        return RunResult(
            **ids,
            published_result=SpecConfig(
                type=str(spec["Type"]), params=dict(spec.get("Params") or {})
            ),
            run_output=RunCommandResult.from_dict(data["RunOutput"]),
            # Rows queued before the field existed have none.
            record_version=int(data.get("RecordVersion", 0)),
        )
    if kind == "ComputeFailure":
        return ComputeFailure(
            **ids,
            event=Event.from_dict(data["Event"]),
            record_version=int(data.get("RecordVersion", 0)),
        )
    raise ValueError(f"unknown callback kind {kind!r}")
