"""Work waiting in one compute node's run queue moves to a node with room for it now: the
requester asks the node to withdraw it (only while it still waits), records it as moved (no
attempt at the job), and places the job again, where the room is."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bacalhau import _wall_steps
from bacalhau._wall_steps import WallSteps
from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    CancelExecutionRequest,
    Connection,
    Execution,
    ExecutionDesiredStateType,
    ExecutionReport,
    ExecutionStateType,
    Job,
    JobStateType,
    LivenessState,
    NodeInfo,
    QueuedExecution,
)
from bacalhau.orchestrator import SchedulerSettings, _queue_moves, schedule
from bacalhau.orchestrator._attempts import MOVED, NEVER_STARTED, QUEUED, is_attempt
from tests.orchestrator.node_view import compute_node_info
from tests.orchestrator.test_callbacks import Setup, requester_with_node_a
from tests.orchestrator.test_scheduler import NOW, ev, execution, job, node

E = ExecutionStateType
D = ExecutionDesiredStateType
S = 1_000_000_000
HOUR = 3600 * S
#: One attempt in all: a move that counted as one would fail the job.
SETTINGS = SchedulerSettings(
    pre_approve=False, queue_move_after=5.0, max_attempts=1, max_attempts_per_node=1
)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with requester_with_node_a(tmp_path, SETTINGS) as ready:
        yield ready


def _job() -> Job:
    task = {"Name": "main", "Engine": {"Type": "noop"}, "Resources": {"CPU": "1"}}
    return Job.from_dict({"Type": "batch", "Tasks": [task]})


async def _accepted_on_a(setup: Setup) -> tuple[str, Execution]:
    """A job whose execution node-a accepted (and, as the report below says, queued)."""
    orch, compute = setup.orch, setup.compute
    job_id = (await orch.submit_job(_job())).job_id
    node, ask = await compute.next("ask")
    assert node == "node-a" and isinstance(ask, AskForBidRequest)
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-a", accepted=True))
    await compute.next("accept")
    return job_id, ask.execution


def _moves(outcome: str) -> float:
    return REGISTRY.get_sample_value("bacalhau_queue_moves_total", {"outcome": outcome}) or 0.0


async def _queued_on_a(setup: Setup, ex: Execution, waited: float) -> None:
    report = ExecutionReport("node-a", [ex.id], queued=[QueuedExecution(ex.id, waited)])
    await setup.orch.report_executions(report)


async def test_an_execution_waiting_in_one_nodes_queue_moves_to_a_node_with_room(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, ex = await _accepted_on_a(setup)
    await setup.view.join(compute_node_info("node-b"))
    await _queued_on_a(setup, ex, waited=6.0)
    assert orch.queue_moves.waiting() == {ex.id: "node-a"}

    before = _moves("moved")
    assert await orch.queue_moves.move_due() == 1
    assert _moves("moved") == before + 1
    node, withdrawal = await compute.next("withdraw")
    assert node == "node-a" and isinstance(withdrawal, CancelExecutionRequest)
    assert withdrawal.execution_id == ex.id
    assert "node-b has room for it now" in withdrawal.justification

    moved = orch.store.get_execution(ex.id)
    assert (moved.compute_state, moved.desired_state) == (E.CANCELLED, D.STOPPED)
    assert moved.compute_details[MOVED] == "true"
    assert not is_attempt(moved)
    assert moved.compute_message.startswith("moved to node node-b: it waited 6s in node node-a")
    history = [h.event.message for h in await orch.job_history(job_id, execution_id=ex.id)]
    assert any(m.startswith("Moved to node node-b") for m in history), history

    # Placed again where the room is, and the job (one attempt in all) does not fail.
    node, ask = await compute.next("ask")
    assert node == "node-b" and isinstance(ask, AskForBidRequest)
    assert ask.execution.id != ex.id
    assert (await orch.get_job(job_id)).state not in (JobStateType.FAILED,)
    assert orch.queue_moves.waiting() == {}


async def test_an_execution_that_started_meanwhile_stays_where_it_is(setup: Setup) -> None:
    orch, compute = setup.orch, setup.compute
    _, ex = await _accepted_on_a(setup)
    await setup.view.join(compute_node_info("node-b"))
    await _queued_on_a(setup, ex, waited=6.0)
    compute.withdraw_answers[ex.id] = "Running"

    before = _moves("started")
    assert await orch.queue_moves.move_due() == 0
    assert _moves("started") == before + 1
    await compute.next("withdraw")
    still = orch.store.get_execution(ex.id)
    assert (still.compute_state, still.desired_state) == (E.BID_ACCEPTED, D.RUNNING)
    assert MOVED not in still.compute_details
    assert not [m for m in compute.sent if m[0] == "ask"]
    # Forgotten until the node says again that it waits.
    assert orch.queue_moves.waiting() == {}


async def test_nothing_moves_before_its_time_or_when_no_other_node_has_room(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    _, ex = await _accepted_on_a(setup)
    await setup.view.join(compute_node_info("node-b", free=0.5))
    # node-b has half a CPU free: the job needs one.
    await _queued_on_a(setup, ex, waited=60.0)
    assert await orch.queue_moves.move_due() == 0
    # node-b frees its room, but the execution has not waited queue_move_after yet.
    await setup.view.join(compute_node_info("node-b"))
    await _queued_on_a(setup, ex, waited=2.0)
    assert await orch.queue_moves.move_due() == 0
    assert not [m for m in compute.sent if m[0] == "withdraw"]
    assert orch.store.get_execution(ex.id).compute_state == E.BID_ACCEPTED
    # A later report without it (it started) replaces what was known.
    await setup.orch.report_executions(ExecutionReport("node-a", [ex.id]))
    assert orch.queue_moves.waiting() == {}


async def test_one_nodes_room_is_offered_to_one_waiting_execution_per_pass(setup: Setup) -> None:
    orch, compute = setup.orch, setup.compute
    _, first = await _accepted_on_a(setup)
    _, second = await _accepted_on_a(setup)
    # Room for one of them (1.5 CPUs free, each needs 1).
    await setup.view.join(compute_node_info("node-b", free=1.5))
    report = ExecutionReport(
        "node-a",
        [first.id, second.id],
        queued=[QueuedExecution(first.id, 9.0), QueuedExecution(second.id, 7.0)],
    )
    await orch.report_executions(report)
    assert await orch.queue_moves.move_due() == 1
    _, withdrawal = await compute.next("withdraw")
    # The one that waited longest goes first.
    assert isinstance(withdrawal, CancelExecutionRequest) and withdrawal.execution_id == first.id


async def test_the_history_says_when_an_execution_waits_in_a_queue_and_when_it_starts(
    setup: Setup,
) -> None:
    orch = setup.orch
    job_id, ex = await _accepted_on_a(setup)

    async def said() -> list[str]:
        return [h.event.message for h in await orch.job_history(job_id, execution_id=ex.id)]

    await _queued_on_a(setup, ex, waited=3.0)
    await _queued_on_a(setup, ex, waited=4.0)  # the same wait, reported again: said once
    assert (await said()).count("Waiting in node node-a's run queue for room") == 1
    # The node's next report holds it, no longer queued: it runs.
    await orch.report_executions(ExecutionReport("node-a", [ex.id]))
    started = [m for m in await said() if m.startswith("Started on node node-a after ")]
    assert len(started) == 1 and started[0].endswith("s in its run queue"), started


async def test_a_restarted_requester_says_each_thing_once_and_tells_the_start(
    tmp_path: Path,
) -> None:
    async with requester_with_node_a(tmp_path, SETTINGS) as setup:
        job_id, ex = await _accepted_on_a(setup)
        await _queued_on_a(setup, ex, waited=3.0)
    async with requester_with_node_a(tmp_path, SETTINGS) as again:
        # Its first report after the restart: the same wait, said once.
        await _queued_on_a(again, ex, waited=9.0)
        await again.orch.report_executions(ExecutionReport("node-a", [ex.id]))
        said = [h.event.message for h in await again.orch.job_history(job_id, execution_id=ex.id)]
    assert said.count("Waiting in node node-a's run queue for room") == 1, said
    assert [m for m in said if m.startswith("Started on node node-a after ")], said
    assert QUEUED not in again.orch.store.get_execution(ex.id).compute_details


async def test_one_execution_of_a_job_moves_to_a_node_per_pass(setup: Setup) -> None:
    orch, compute = setup.orch, setup.compute
    await setup.view.join(compute_node_info("node-b"))
    two = Job.from_dict(
        {"Type": "batch", "Count": 2, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"},
                                                 "Resources": {"CPU": "1"}}]}
    )  # fmt: skip
    job_id = (await orch.submit_job(two)).job_id
    asks = [await compute.next("ask"), await compute.next("ask")]
    executions = {}
    for node_id, ask in asks:
        assert isinstance(ask, AskForBidRequest)
        await orch.on_bid_complete(BidResult(ask.execution.id, job_id, node_id, accepted=True))
        executions[node_id] = ask.execution
    await compute.next("accept")
    await compute.next("accept")
    # node-a and node-b are full; node-c has room for both, and each partition needs a
    # node of its own.
    for full in ("node-a", "node-b"):
        await setup.view.join(compute_node_info(full, free=0.0))
    await setup.view.join(compute_node_info("node-c"))
    for node_id, ex in executions.items():
        report = ExecutionReport(node_id, [ex.id], queued=[QueuedExecution(ex.id, 9.0)])
        await orch.report_executions(report)
    assert await orch.queue_moves.move_due() == 1
    assert len([m for m in compute.sent if m[0] == "withdraw"]) == 1


def test_an_execution_lost_while_it_waited_in_its_nodes_queue_is_no_attempt() -> None:
    waiting = execution("e1", "a", E.BID_ACCEPTED, D.RUNNING)
    waiting.compute_details = {QUEUED: str(NOW)}
    gone = replace(node("a"), connection=Connection.DISCONNECTED, liveness=LivenessState.LEFT)
    one_try = SchedulerSettings(max_attempts=1, max_attempts_per_node=1)
    plan = schedule(job(), [waiting], [gone, node("b")], ev(), now=NOW + S, settings=one_try)
    [change] = plan.changes
    assert change.compute_state == E.FAILED
    assert "it never started" in change.compute_message
    assert change.compute_details is not None and change.compute_details[NEVER_STARTED] == "true"
    # Placed again, and the job (one attempt in all) does not fail.
    assert plan.new_job_state != JobStateType.FAILED, plan.job_message
    assert [e.node_id for e in plan.new_executions] == ["b"]
    # One that had started (no queue detail) is an attempt, as before.
    started = execution("e1", "a", E.BID_ACCEPTED, D.RUNNING)
    plan = schedule(job(), [started], [gone, node("b")], ev(), now=NOW + S, settings=one_try)
    assert plan.new_job_state == JobStateType.FAILED


def test_an_execution_waiting_in_a_queue_is_not_past_its_execution_timeout() -> None:
    # ExecutionTimeout 10 s, accepted 100 s ago: the requester's backstop (for a node gone
    # silent) fails a run that long; a wait in the node's queue is no run.
    timed = job(Timeouts={"ExecutionTimeout": 10})
    timed.state = JobStateType.RUNNING
    waiting = replace(execution("e1", "a", E.BID_ACCEPTED, D.RUNNING), modify_time=NOW)
    waiting.compute_details = {QUEUED: str(NOW)}
    plan = schedule(timed, [waiting], [node("a"), node("b")], ev(), now=NOW + 100 * S)
    assert not plan.changes, plan.changes
    # Once it started (no queue detail), the clock runs from then, as before.
    running = replace(waiting, compute_details={})
    plan = schedule(timed, [running], [node("a"), node("b")], ev(), now=NOW + 100 * S)
    assert [c.compute_state for c in plan.changes] == [E.FAILED]
    assert "timed out" in (plan.changes[0].compute_message or "")


async def test_the_time_in_a_queue_leaves_out_a_step_of_the_wall_clock(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wall clock steps two hours forward while an execution waits: the history says it
    started after seconds in the queue, not two hours."""
    orch = setup.orch
    job_id, ex = await _accepted_on_a(setup)
    await _queued_on_a(setup, ex, waited=3.0)
    steps = WallSteps()
    monkeypatch.setattr(_wall_steps, "_STEPS", steps)
    wall, boot = time.time_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    steps.look(wall, boot)
    steps.look(wall + 2 * HOUR, boot)  # the step, seen at once
    monkeypatch.setattr(_queue_moves, "now_ns", lambda: time.time_ns() + 2 * HOUR)

    await orch.report_executions(ExecutionReport("node-a", [ex.id]))

    said = [h.event.message for h in await orch.job_history(job_id, execution_id=ex.id)]
    started = [m for m in said if m.startswith("Started on node node-a after ")]
    assert started == ["Started on node node-a after 3s in its run queue"], said


#: An ipfs input node-a holds 1 GiB of: ranking puts the job there whenever it has room,
#: if only in its queue (locality outweighs free room).
_HELD = "QmXe7gvqFfynvyYqMwq6Xi7U2AYBtB8WSUS812vJTtPYwD"


def _with_ipfs(info: NodeInfo, held: dict[str, int] | None = None) -> NodeInfo:
    assert info.compute is not None
    compute = replace(info.compute, storage_sources=["ipfs"], held_roots=held or {})
    return replace(info, compute=compute)


def _holder(free: float) -> NodeInfo:
    return _with_ipfs(compute_node_info("node-a", free=free), {_HELD: 2**30})


async def test_a_moved_execution_goes_to_the_node_the_move_chose(setup: Setup) -> None:
    """node-a holds the job's input and is full; node-b has room. The move chooses node-b,
    and the job must go there: placed again by ranking alone, it went back into node-a's
    queue (locality first), waited, and moved again, without end."""
    orch, compute = setup.orch, setup.compute
    await setup.view.join(_holder(free=4.0))
    task = {
        "Name": "main",
        "Engine": {"Type": "noop"},
        "Resources": {"CPU": "1"},
        "InputSources": [{"Source": {"Type": "ipfs", "Params": {"CID": _HELD}}, "Target": "/in"}],
    }
    job_id = (await orch.submit_job(Job.from_dict({"Type": "batch", "Tasks": [task]}))).job_id
    node, ask = await compute.next("ask")
    assert node == "node-a" and isinstance(ask, AskForBidRequest)
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-a", accepted=True))
    await compute.next("accept")
    # node-a is full now (its queue has room), node-b is idle.
    await setup.view.join(_holder(free=0.0))
    await setup.view.join(_with_ipfs(compute_node_info("node-b")))
    await _queued_on_a(setup, ask.execution, waited=6.0)

    assert await orch.queue_moves.move_due() == 1
    _, withdrawal = await compute.next("withdraw")
    assert isinstance(withdrawal, CancelExecutionRequest)
    assert "node-b has room for it now" in withdrawal.justification
    node, again = await compute.next("ask")
    assert node == "node-b", "the moved job went back to node-a's queue"
    # Once placed there, the preference is spent: a later pass ranks as before.
    assert isinstance(again, AskForBidRequest)
    await orch.on_bid_complete(BidResult(again.execution.id, job_id, "node-b", accepted=False))
    node, _ = await compute.next("ask")
    assert node == "node-a"
