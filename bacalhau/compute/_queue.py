"""The local run queue: executions wait here until the node has room for them."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bacalhau.compute._capacity import CapacityTracker
from bacalhau.compute._errors import NotEnoughCapacity
from bacalhau.models import Resources


@dataclass(order=True, slots=True)
class _Waiting:
    sort_key: tuple[int, int]
    execution_id: str = field(compare=False)
    usage: Resources = field(compare=False)
    #: When it arrived (``time.monotonic()``).
    since: float = field(compare=False, default=0.0)


class RunQueue:
    """Starts executions while capacity allows: higher ``Job.Priority`` first, then arrival.

    A waiting execution that fits starts even if a bigger one ahead of it does not (so small
    jobs are not stuck behind a big one, as in Bacalhau). ``start`` is called synchronously
    with the execution ID once its resources are reserved; the owner calls :meth:`finished`
    when it ends, which frees its resources and starts whatever fits next. One still waiting
    at the deadline it was submitted with (Unix ns) leaves the queue, and ``expire`` is
    called with its ID.
    """

    def __init__(
        self,
        capacity: CapacityTracker,
        start: Callable[[str], None],
        expire: Callable[[str], None] | None = None,
    ) -> None:
        self._capacity = capacity
        self._start = start
        self._expire = expire
        self._waiting: list[_Waiting] = []
        self._arrivals = itertools.count()
        self._deadlines: dict[str, asyncio.TimerHandle] = {}

    @property
    def capacity(self) -> CapacityTracker:
        return self._capacity

    @property
    def queued_count(self) -> int:
        return len(self._waiting)

    def queued_usage(self) -> Resources:
        used = Resources()
        for item in self._waiting:
            used = used.add(item.usage)
        return used

    def waiting(self) -> list[tuple[str, float]]:
        """Each waiting execution's ID and the seconds it has waited, in queue order."""
        now = time.monotonic()
        return [(item.execution_id, now - item.since) for item in self._waiting]

    def __contains__(self, execution_id: object) -> bool:
        return any(item.execution_id == execution_id for item in self._waiting)

    def submit(
        self, execution_id: str, usage: Resources, *, priority: int = 0, deadline_ns: int = 0
    ) -> None:
        """Queue an execution (starting it now if it fits).

        Raises :class:`NotEnoughCapacity` when it exceeds the node's total capacity.
        """
        if not usage.fits_in(self._capacity.total):
            raise NotEnoughCapacity(
                "not enough capacity to run job: " + usage.shortfall(self._capacity.total)
            )
        if execution_id in self or self._capacity.is_reserved(execution_id):
            return
        item = _Waiting((-priority, next(self._arrivals)), execution_id, usage, time.monotonic())
        bisect.insort(self._waiting, item)
        self._dispatch()
        if deadline_ns and self._expire is not None and execution_id in self:
            delay = max(0.0, (deadline_ns - time.time_ns()) / 1e9)
            loop = asyncio.get_running_loop()
            self._deadlines[execution_id] = loop.call_later(delay, self._expired, execution_id)

    def _expired(self, execution_id: str) -> None:
        self._deadlines.pop(execution_id, None)
        if self.remove(execution_id) and self._expire is not None:
            self._expire(execution_id)

    def remove(self, execution_id: str) -> bool:
        """Drop a waiting execution; False if it was not waiting."""
        for i, item in enumerate(self._waiting):
            if item.execution_id == execution_id:
                del self._waiting[i]
                self._drop_deadline(execution_id)
                return True
        return False

    def _drop_deadline(self, execution_id: str) -> None:
        timer = self._deadlines.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def finished(self, execution_id: str) -> None:
        """Free a started execution's resources and start what fits now."""
        self._capacity.release(execution_id)
        self._dispatch()

    def _dispatch(self) -> None:
        i = 0
        while i < len(self._waiting):
            item = self._waiting[i]
            if self._capacity.try_reserve(item.execution_id, item.usage):
                del self._waiting[i]
                self._drop_deadline(item.execution_id)
                self._start(item.execution_id)
            else:
                i += 1
