"""Daemon, service and ops jobs against a real Orchestrator (SQLite store, in-test compute
transport): a long-running execution that ends is a failure and is restarted; requester
approval hooks decide every job type's bids; a decision cut short by a restart is resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute

E = ExecutionStateType
REQUESTER = NodeInfo(node_id="requester", node_type=NodeType.REQUESTER)


def _job(kind: str, count: int = 0) -> Job:
    spec: dict[str, object] = {
        "Type": kind,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}],
    }
    if count:
        spec["Count"] = count
    return Job.from_dict(spec)


async def _until(check: object, what: str) -> None:
    assert callable(check)
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def _run_and_end(orch: Orchestrator, compute: RecordingCompute, kind: str) -> None:
    job_id = (await orch.submit_job(_job(kind, count=1 if kind == "service" else 0))).job_id
    node, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    first = ask.execution
    await orch.on_bid_complete(BidResult(first.id, job_id, node, accepted=True))
    if ask.wait_for_approval:
        await compute.next("accept")
    # The execution exits by itself, successfully.
    await orch.on_run_complete(
        RunResult(first.id, job_id, node, SpecConfig(type="noop"), RunCommandResult(exit_code=0))
    )
    ended = orch.store.get_execution(first.id)
    assert ended.compute_state == E.FAILED
    assert ended.compute_message.startswith("execution completed unexpectedly")
    assert ended.run_output is not None and ended.run_output.exit_code == 0
    # The job is not done: the scheduler starts it again on the node after its backoff.
    _, again = await compute.next("ask")
    assert isinstance(again, AskForBidRequest) and again.execution.id != first.id
    assert (await orch.get_job(job_id)).state == JobStateType.RUNNING


async def test_a_daemon_or_service_execution_that_exits_failed_and_is_restarted(
    tmp_path: Path,
) -> None:
    for kind in ("daemon", "service"):
        compute = RecordingCompute()
        view = StaticNodeView()
        orch = Orchestrator(
            node_info=REQUESTER,
            data_dir=tmp_path / kind,
            compute=compute,
            node_view=view,
            # A short backoff: the restart comes at once.
            settings=SchedulerSettings(retry_delay=0.05, retry_max_delay=0.05),
        )
        async with orch:
            await view.join(compute_node_info("node-a"))
            await _run_and_end(orch, compute, kind)


async def test_an_ops_execution_that_exits_still_completes(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    async with Orchestrator(
        node_info=REQUESTER, data_dir=tmp_path, compute=compute, node_view=view
    ) as orch:
        await view.join(compute_node_info("node-a"))
        job_id = (await orch.submit_job(_job("ops"))).job_id
        node, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest)
        ex = ask.execution
        await orch.on_bid_complete(BidResult(ex.id, job_id, node, accepted=True))
        await orch.on_run_complete(
            RunResult(ex.id, job_id, node, SpecConfig(type="noop"), RunCommandResult(exit_code=0))
        )
        assert orch.store.get_execution(ex.id).compute_state == E.COMPLETED

        async def done() -> bool:
            return (await orch.get_job(job_id)).state == JobStateType.COMPLETED

        await _until(done, "ops job completed")
