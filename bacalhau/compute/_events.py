"""Events a compute node reports: the failure event's details are part of the wire contract."""

from __future__ import annotations

from bacalhau.errors import BacalhauError
from bacalhau.models import HINT, Event, Failure, now_ns

#: Topics of the pipeline phases, as Bacalhau names them in job history.
TOPIC_BIDDING = "Bidding"
TOPIC_RUNNING = "Running Execution"
TOPIC_PUBLISHING = "Publishing Results"
TOPIC_RESTART = "Compute Node Restart"


def failure_event(err: BacalhauError, *, topic: str, message: str | None = None) -> Event:
    """The event of an ``OnComputeFailure``: the error's message, code, hint and retryability.

    ``FailsExecution`` is always true: the compute node gave up on this execution, and the
    requester decides whether to retry it elsewhere (``Retryable``).
    """
    details = dict(err.details)
    details.update(Failure(err.code, err.retryable).details())
    # Hint even when empty: clients have always read the key on these events.
    details.update({HINT: err.hint, "FailsExecution": "true", "Component": err.component})
    return Event(
        message=message if message is not None else err.message,
        topic=topic,
        timestamp=now_ns(),
        details=details,
    )


def info_event(message: str, *, topic: str) -> Event:
    return Event(message=message, topic=topic, timestamp=now_ns())
