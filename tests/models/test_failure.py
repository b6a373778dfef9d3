"""The failure details events and executions carry: Bacalhau's string map, written and read
through one type."""

from __future__ import annotations

from bacalhau.errors import ExecutionTimeout, NodeLost
from bacalhau.models import Event, Failure, never_retried


def test_an_event_failure_is_marked_as_an_error_with_its_hint() -> None:
    details = Failure(ExecutionTimeout.code, True, hint="raise the timeout").details()
    assert details == {
        "ErrorCode": "ExecutionTimeout",
        "Retryable": "true",
        "IsError": "true",
        "Hint": "raise the timeout",
    }
    assert Event(message="m", details=details).is_error
    assert not never_retried(details)


def test_an_executions_own_details_carry_no_error_mark_and_set_their_flags() -> None:
    details = Failure(NodeLost.code, False, flags=("NodeLost", "Unreached")).details(error=False)
    assert details == {
        "ErrorCode": "NodeLost",
        "Retryable": "false",
        "NodeLost": "true",
        "Unreached": "true",
    }
    assert not Event(message="m", details=details).is_error
    assert never_retried(details)


def test_only_an_explicit_false_rules_out_another_attempt() -> None:
    # Details written before the key existed, or by a node that does not say, are retried.
    assert not never_retried({})
    assert not never_retried({"Retryable": "true"})
    assert never_retried({"Retryable": "false"})
