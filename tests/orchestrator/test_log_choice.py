"""Which execution's output a log request gets, and what it is told when there is none."""

from __future__ import annotations

import pytest

from bacalhau.errors import ExecutionNotFound
from bacalhau.models import JobStateType
from bacalhau.orchestrator._logs import choose_execution
from tests.orchestrator.test_scheduler import job


def test_a_job_no_node_ran_says_why_it_has_no_output() -> None:
    failed = job()
    failed.state = JobStateType.FAILED
    failed.state_message = "not enough nodes to run job: node a has no GPU"
    with pytest.raises(ExecutionNotFound) as caught:
        choose_execution(failed, [], "")
    assert caught.value.message == (
        "no executions found for job j-1 (it is Failed: not enough nodes to run job: "
        "node a has no GPU)"
    )
    assert "bacalhau job describe j-1" in caught.value.hint
    pending = job()
    with pytest.raises(ExecutionNotFound) as caught:
        choose_execution(pending, [], "")
    assert caught.value.message == "no executions found for job j-1"
