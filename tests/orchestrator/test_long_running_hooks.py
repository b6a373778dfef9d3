"""Daemon, service and ops jobs against a real Orchestrator (SQLite store, in-test compute
transport): a long-running execution that ends is a failure and is restarted; requester
approval hooks decide every job type's bids; a decision cut short by a restart is resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    Execution,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeState,
    NodeType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.orchestrator import ApprovalChain, HookDecision, Orchestrator, SchedulerSettings
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


async def _wait_state(orch: Orchestrator, job_id: str, state: JobStateType) -> None:
    for _ in range(200):
        if (await orch.get_job(job_id)).state == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never became {state.wire}")


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
        await _wait_state(orch, job_id, JobStateType.COMPLETED)


class NotOnB:
    """The operator's hook: bids from node-b are refused."""

    name = "not-on-b"

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        if node.info.node_id == "node-b":
            return HookDecision.reject("node-b is being drained")
        return HookDecision.accept("fine")


async def test_approval_hooks_decide_ops_and_daemon_bids(tmp_path: Path) -> None:
    for kind in ("ops", "daemon"):
        compute = RecordingCompute()
        view = StaticNodeView()
        orch = Orchestrator(
            node_info=REQUESTER,
            data_dir=tmp_path / kind,
            compute=compute,
            node_view=view,
            approval_hooks=ApprovalChain([NotOnB()]),
        )
        async with orch:
            await view.join(compute_node_info("node-a"))
            await view.join(compute_node_info("node-b"))
            job_id = (await orch.submit_job(_job(kind))).job_id
            asks = [await compute.next("ask"), await compute.next("ask")]
            for node, ask in asks:
                # Not pre-approved: the node waits for the requester's decision.
                assert isinstance(ask, AskForBidRequest) and ask.wait_for_approval, kind
                await orch.on_bid_complete(BidResult(ask.execution.id, job_id, node, accepted=True))
            node, rejected = await compute.next("reject")
            assert node == "node-b" and isinstance(rejected, BidDecision)
            assert "not-on-b" in rejected.justification
            node, accepted = await compute.next("accept")
            assert node == "node-a" and isinstance(accepted, BidDecision)
            await asyncio.sleep(0.2)
            # node-b is never told to run the job, nor asked again.
            assert not [(k, n) for k, n, _ in compute.sent if n == "node-b"], kind
            on_b = [e for e in orch.store.executions_of(job_id) if e.node_id == "node-b"]
            assert [e.compute_state for e in on_b] == [E.BID_REJECTED]
            assert (await orch.get_job(job_id)).state == JobStateType.RUNNING
            if kind == "ops":
                ex_a = next(e for e in orch.store.executions_of(job_id) if e.node_id == "node-a")
                await orch.on_run_complete(
                    RunResult(
                        ex_a.id,
                        job_id,
                        "node-a",
                        SpecConfig(type="noop"),
                        RunCommandResult(exit_code=0),
                    )
                )
                await _wait_state(orch, job_id, JobStateType.COMPLETED)


class Held:
    """A hook that never answers (the requester stops while it decides)."""

    name = "held"

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Asked:
    """A hook that accepts, remembering which executions it was asked about."""

    name = "held"  # the same configured hook, after the restart

    def __init__(self) -> None:
        self.executions: list[str] = []

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        self.executions.append(execution.id)
        return HookDecision.accept("ok")


async def test_a_restart_while_hooks_decide_resumes_the_decision(tmp_path: Path) -> None:
    held = Held()
    compute = RecordingCompute()
    view = StaticNodeView()
    async with Orchestrator(
        node_info=REQUESTER,
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        approval_hooks=[held],
    ) as orch:
        await view.join(compute_node_info("node-a"))
        job_id = (await orch.submit_job(_job("batch"))).job_id
        node, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest)
        ex_id = ask.execution.id
        await orch.on_bid_complete(BidResult(ex_id, job_id, node, accepted=True))
        await asyncio.wait_for(held.asked.wait(), 5)
    # The requester stopped with the bid undecided; the node still waits for its answer.
    asked = Asked()
    compute = RecordingCompute()
    view = StaticNodeView()
    async with Orchestrator(
        node_info=REQUESTER,
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        approval_hooks=[asked],
        # Nodes not back yet are unknown, not lost, for a while (as a deployment sets it).
        settings=SchedulerSettings(rejoin_grace=5.0),
    ) as orch:
        # The node rejoins a little after the requester is back.
        await asyncio.sleep(0.1)
        await view.join(compute_node_info("node-a"))
        node, decision = await compute.next("accept")
        assert node == "node-a" and isinstance(decision, BidDecision)
        assert decision.execution_id == ex_id
        assert asked.executions == [ex_id]
        ex = orch.store.get_execution(ex_id)
        assert ex.compute_state == E.BID_ACCEPTED
        assert "AwaitingApproval" not in ex.compute_details
        history = [h.event.message for h in await orch.job_history(job_id)]
        assert any("Requester restarted" in m for m in history)
