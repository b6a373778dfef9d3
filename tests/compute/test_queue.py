from __future__ import annotations

import pytest

from bacalhau.compute import CapacityTracker, NotEnoughCapacity, RunQueue
from bacalhau.models import Resources


def test_tracker_reserves_within_total() -> None:
    tracker = CapacityTracker(Resources(cpu=2, memory=1000))
    assert tracker.try_reserve("a", Resources(cpu=1.5, memory=100))
    assert not tracker.try_reserve("b", Resources(cpu=1, memory=100))
    assert tracker.available() == Resources(cpu=0.5, memory=900)
    assert tracker.try_reserve("a", Resources(cpu=1.5, memory=100))  # idempotent
    tracker.release("a")
    assert tracker.available() == Resources(cpu=2, memory=1000)
    assert tracker.running_count == 0


def test_queue_orders_by_priority_then_arrival_and_backfills() -> None:
    started: list[str] = []
    queue = RunQueue(CapacityTracker(Resources(cpu=2, memory=1000)), started.append)
    one = Resources(cpu=1, memory=10)
    queue.submit("running-1", one)
    queue.submit("running-2", one)
    queue.submit("low", one, priority=1)
    queue.submit("high-a", one, priority=9)
    queue.submit("mid", one, priority=5)
    queue.submit("high-b", one, priority=9)
    assert started == ["running-1", "running-2"]
    assert queue.queued_count == 4
    assert queue.queued_usage() == Resources(cpu=4, memory=40)

    queue.finished("running-1")
    assert started[-1] == "high-a"
    assert queue.remove("mid")
    assert not queue.remove("mid")
    queue.finished("running-2")
    queue.finished("high-a")
    assert started == ["running-1", "running-2", "high-a", "high-b", "low"]

    # A small job starts next to a big one that does not fit yet ("low" still runs).
    queue.finished("high-b")
    queue.submit("big", Resources(cpu=2, memory=10), priority=10)
    queue.submit("small", Resources(cpu=0.5, memory=10))
    assert started[-1] == "small"
    assert "big" in queue


def test_queue_refuses_what_can_never_fit() -> None:
    queue = RunQueue(CapacityTracker(Resources(cpu=1, memory=100)), lambda _id: None)
    with pytest.raises(NotEnoughCapacity, match="not enough capacity to run job"):
        queue.submit("huge", Resources(cpu=8, memory=10))
