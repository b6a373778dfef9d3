"""A delayed evaluation is never handed out before its due time, on the event loop nodes run
by default (uvloop, whose timers count whole milliseconds and may fire up to one early):
schedulers compare the time with it, and one made early can end a job's timer chain."""

from __future__ import annotations

import asyncio
import time

import uvloop

from bacalhau.models import Evaluation, new_evaluation_id
from bacalhau.orchestrator._broker import EvaluationBroker

MS = 1_000_000


async def _due_times(count: int) -> list[tuple[int, int]]:
    """(due time, time handed out) of ``count`` evaluations due over the next ~50 ms."""
    broker = EvaluationBroker()
    start = time.time_ns()
    for i in range(count):
        broker.enqueue(
            Evaluation(
                id=new_evaluation_id(),
                job_id=f"j-{i}",
                namespace="default",
                type="service",
                triggered_by="job-queue",
                wait_until=start + (i % 50) * MS + 300_000,
            )
        )
    out = []
    for _ in range(count):
        ev = await asyncio.wait_for(broker.dequeue(), 5)
        out.append((ev.wait_until, time.time_ns()))
        broker.ack(ev)
    return out


def test_no_evaluation_is_handed_out_before_it_is_due() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        handed = runner.run(_due_times(300))
    early = [due - at for due, at in handed if at < due]
    assert early == [], f"{len(early)} of 300 handed out early, by up to {max(early)} ns"
