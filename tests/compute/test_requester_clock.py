"""A compute node whose clock is apart from its requester's counts a job's QueueTimeout and
TotalTimeout as the requester does: the job's create time (a requester time) is moved onto the
node's clock by the offset measured from the ask."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from bacalhau.compute import RequesterClocks
from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    ComputeFailure,
    Execution,
    Resources,
    RunResult,
)
from tests.compute.jobs import make_execution
from tests.compute.test_endpoint import REQUESTER, NodeFactory, compute_node
from tests.compute.waiting import eventually

__all__ = ["compute_node"]

HOUR_NS = 3600 * 1_000_000_000
#: The callbacks that end an execution.
_ENDS = (RunResult, ComputeFailure)


def _created_by_requester(execution: Execution, offset_ns: int) -> Execution:
    """The job as a requester whose clock is ``offset_ns`` behind this node's stamps it now."""
    assert execution.job is not None
    execution.job.create_time = time.time_ns() - offset_ns
    return execution


async def test_a_node_ahead_of_its_requester_gives_a_job_its_whole_total_timeout(
    compute_node: NodeFactory,
) -> None:
    """Two hours ahead, with a TotalTimeout of one hour: the run happens (it used to fail at once
    as "TotalTimeout passed")."""
    async with compute_node() as node:
        execution = _created_by_requester(make_execution("echo on-time"), 2 * HOUR_NS)
        assert execution.job is not None
        execution.job.task.timeouts.total_timeout = 3600
        ask = AskForBidRequest(execution, wait_for_approval=False, clock_offset_ns=2 * HOUR_NS)
        await node.endpoint.ask_for_bid(REQUESTER, ask)
        (result,) = await node.callbacks.wait_for(execution.id, _ENDS)
        assert isinstance(result, RunResult), result
        assert result.run_output.stdout == "on-time\n"


async def test_a_node_ahead_of_its_requester_keeps_queued_work_for_its_queue_timeout(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        waiting = _created_by_requester(make_execution("echo waited", cpu="1"), 2 * HOUR_NS)
        assert waiting.job is not None
        waiting.job.task.timeouts.queue_timeout = 600
        for execution in (blocker, waiting):
            ask = AskForBidRequest(execution, False, clock_offset_ns=2 * HOUR_NS)
            await node.endpoint.ask_for_bid(REQUESTER, ask)
        await eventually(lambda: node.endpoint.queued_count == 1)
        await node.callbacks.wait_for(waiting.id, BidResult)
        # A passed deadline fails a queued execution at once: half a second is ample to see it.
        await asyncio.sleep(0.5)
        assert node.endpoint.queued_count == 1
        assert not node.callbacks.messages(waiting.id)[1:], "only its bid answer so far"
        gate.touch()
        (result,) = await node.callbacks.wait_for(waiting.id, _ENDS)
        assert isinstance(result, RunResult), result


async def test_an_offset_in_the_other_direction_still_ends_the_queue_wait_on_time(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    """The node behind its requester by an hour: a QueueTimeout of 1 s still ends the wait after
    about 1 s, not an hour later."""
    gate = tmp_path / "gate"
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        waiting = _created_by_requester(make_execution("echo never", cpu="1"), -HOUR_NS)
        assert waiting.job is not None
        waiting.job.task.timeouts.queue_timeout = 1
        started = time.monotonic()
        for execution in (blocker, waiting):
            ask = AskForBidRequest(execution, False, clock_offset_ns=-HOUR_NS)
            await node.endpoint.ask_for_bid(REQUESTER, ask)
        (failure,) = await node.callbacks.wait_for(waiting.id, ComputeFailure)
        assert isinstance(failure, ComputeFailure)
        assert failure.event.details["ErrorCode"] == "QueueTimeout"
        assert time.monotonic() - started < 10
        gate.touch()


def test_the_offset_is_logged_once_per_requester_and_again_when_it_moves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clocks = RequesterClocks()
    execution = make_execution()
    assert execution.job is not None
    created = execution.job.create_time = time.time_ns()
    with caplog.at_level(logging.WARNING, logger="bacalhau.compute"):
        for offset in (2 * HOUR_NS, 2 * HOUR_NS + 5_000_000_000, 3 * HOUR_NS):
            moved = clocks.localize("req-a", AskForBidRequest(execution, clock_offset_ns=offset))
            assert moved.execution.job is not None
            assert moved.execution.job.create_time == created + offset
        clocks.localize("req-b", AskForBidRequest(execution, clock_offset_ns=-90_000_000_000))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "requester req-a is 2h0m0s behind this node's" in lines[0]
    assert "requester req-a is 3h0m0s behind" in lines[1]
    assert "requester req-b is 1m30s ahead of this node's" in lines[2]
    assert "NTP" in lines[0]
    # The ask as it came is left as it was (the store keeps the moved copy).
    assert execution.job.create_time == created


def test_a_small_offset_is_delay_not_a_clock_apart() -> None:
    execution = make_execution()
    ask = AskForBidRequest(execution, clock_offset_ns=400_000_000)
    assert RequesterClocks().localize("req-a", ask) is ask
