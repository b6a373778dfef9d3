"""A node back after its job was removed: the execution it still runs for this requester is
cancelled on it, not left to run to its end for a result nobody would take."""

from __future__ import annotations

import pytest

from bacalhau.errors import JobNotFound
from bacalhau.models import CancelExecutionRequest, ExecutionReport, now_ns
from tests.orchestrator.test_callbacks import Setup, _running_on, setup

__all__ = ["setup"]

DAY = 24 * 3600 * 1_000_000_000


async def test_an_execution_of_a_removed_job_is_cancelled_when_its_node_reports_it(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, ex = await _running_on(orch, compute, "node-a")
    # The node is out of reach when the job is stopped: the cancel never gets there.
    await setup.view.kill("node-a", silent_for=3.0)
    await orch.stop_job(job_id, reason="not needed")
    await compute.next("cancel")
    # Retention removes the stopped job before the node is back.
    assert await orch.retention.sweep(now=now_ns() + 8 * DAY) == 1
    with pytest.raises(JobNotFound):
        await orch.get_job(job_id)

    await setup.view.come_back("node-a")
    await orch.report_executions(ExecutionReport("node-a", [ex.id]))
    node, cancel = await compute.next("cancel")
    assert node == "node-a" and isinstance(cancel, CancelExecutionRequest)
    assert cancel.execution_id == ex.id
    assert "no longer knows it" in cancel.justification
