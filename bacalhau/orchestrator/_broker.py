"""The evaluation broker: an in-memory queue with one in-flight evaluation per job.

Evaluations for a job that is already queued or being processed coalesce into the newest
one (the scheduler always looks at the whole job, so processing the latest is enough).
Delayed evaluations (``wait_until``) become ready at their time. The durable copy of every
evaluation lives in the job store; the broker is back-filled from it at start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from bacalhau.models import Evaluation
from bacalhau.orchestrator._metrics import QUEUE_DEPTH


class EvaluationBroker:
    def __init__(self) -> None:
        self._ready: deque[str] = deque()
        self._pending: dict[str, Evaluation] = {}
        self._inflight: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._superseded: list[Evaluation] = []

    def enqueue(self, ev: Evaluation) -> None:
        """Queue ``ev`` (now, or at ``ev.wait_until`` Unix ns)."""
        delay = (ev.wait_until - time.time_ns()) / 1e9 if ev.wait_until else 0.0
        if delay > 0:
            loop = asyncio.get_running_loop()
            old = self._timers.pop(ev.id, None)
            if old is not None:
                old.cancel()
            self._timers[ev.id] = loop.call_later(delay, self._fire, ev)
            return
        self._put(ev)

    def _fire(self, ev: Evaluation) -> None:
        early = ev.wait_until - time.time_ns()
        if early > 0:
            # uvloop's timers count whole milliseconds and may fire up to one early: an
            # evaluation is never made before its due time (schedulers compare with it).
            loop = asyncio.get_running_loop()
            self._timers[ev.id] = loop.call_later(early / 1e9 + 0.001, self._fire, ev)
            return
        self._timers.pop(ev.id, None)
        self._put(ev)

    def _put(self, ev: Evaluation) -> None:
        previous = self._pending.get(ev.job_id)
        if previous is not None:
            self._superseded.append(previous)
        self._pending[ev.job_id] = ev
        QUEUE_DEPTH.set(len(self._pending))
        if ev.job_id not in self._inflight and ev.job_id not in self._ready:
            self._ready.append(ev.job_id)
            self._wakeup.set()

    async def dequeue(self) -> Evaluation:
        """The next ready evaluation; its job is in flight until :meth:`ack`."""
        while True:
            while self._ready:
                job_id = self._ready.popleft()
                ev = self._pending.pop(job_id, None)
                QUEUE_DEPTH.set(len(self._pending))
                if ev is None:
                    continue
                self._inflight.add(job_id)
                return ev
            self._wakeup.clear()
            await self._wakeup.wait()

    def hold(self, ev: Evaluation) -> None:
        """``ev`` is processed outside the queue (the submit's own evaluation): its job is
        in flight, as if dequeued, until :meth:`ack`."""
        self._inflight.add(ev.job_id)

    def ack(self, ev: Evaluation) -> None:
        """Processing of ``ev`` finished; newer evaluations of its job become ready."""
        self._inflight.discard(ev.job_id)
        if ev.job_id in self._pending and ev.job_id not in self._ready:
            self._ready.append(ev.job_id)
            self._wakeup.set()

    def is_busy(self, job_id: str) -> bool:
        """Whether an evaluation of ``job_id`` waits to be processed or is being processed
        (delayed ones aside)."""
        return job_id in self._pending or job_id in self._inflight

    def is_waiting(self, job_id: str) -> bool:
        """Whether an evaluation of ``job_id`` waits to be processed (delayed ones aside)."""
        return job_id in self._pending

    def take_superseded(self) -> list[Evaluation]:
        """Evaluations replaced by newer ones (to be marked complete in the store)."""
        out, self._superseded = self._superseded, []
        return out

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def __len__(self) -> int:
        return len(self._pending)
