"""Time elapsed since a wall-clock instant, without the wall clock's steps.

Jobs and executions carry wall-clock instants (Unix ns) and survive restarts, so the
requester's backstops count from them: a job's TotalTimeout and QueueTimeout from its create
time, an execution's ExecutionTimeout from when it started. A forward step of the wall clock
(an NTP correction, ``date -s``) makes every instant written before it look older by the step,
and those backstops would fail work that has its time left.

So the wall clock is watched against ``CLOCK_BOOTTIME``, which is never stepped (and, unlike
the monotonic clock, runs through a suspend, as wall time does). A forward step seen between
two looks is remembered with where the old frame ended; :func:`elapsed_ns` takes out of the
time since an instant every step made after it. Instants of the new frame lie past the step,
so the two are told apart, as long as the step is larger than the time between two looks
(looks are taken at each :func:`elapsed_ns` and by the node's housekeeping). A step back needs
nothing: it makes instants look younger, so work is failed late, never early.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["WallSteps", "elapsed_ns", "look"]

log = logging.getLogger(__name__)

#: Smaller gaps between the two clocks are their drift and the reading's jitter, not a step.
MIN_STEP_NS = 1_000_000_000
#: Steps remembered (the oldest is forgotten first; a node sees a handful in its life).
_KEPT = 64


class WallSteps:
    """The forward steps of a wall clock, seen by comparing it with a clock never stepped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (wall time up to which instants belong to the frame before the step, step in ns)
        self._steps: list[tuple[int, int]] = []
        self._last: tuple[int, int] | None = None

    def look(self, wall: int, steady: int) -> int:
        """Compare the two clocks now (``wall`` Unix ns, ``steady`` a clock never stepped);
        returns the forward step seen since the last look, 0 if none."""
        with self._lock:
            last, self._last = self._last, (wall, steady)
            if last is None:
                return 0
            expected = last[0] + (steady - last[1])
            step = wall - expected
            if step < MIN_STEP_NS:
                return 0
            self._steps.append((expected, step))
            del self._steps[:-_KEPT]
        log.warning(
            "the wall clock stepped forward by %.1fs: timeouts counted from earlier instants "
            "leave the step out",
            step / 1e9,
        )
        return step

    def elapsed(self, since: int, now: int) -> int:
        """Nanoseconds from wall instant ``since`` to ``now``, less the forward steps made
        in between."""
        elapsed = now - since
        for bound, step in self._steps:
            if since < bound <= now:
                elapsed -= step
        return elapsed


_STEPS = WallSteps()


def look() -> int:
    """Compare this process's wall clock with its boot-time clock now (see
    :meth:`WallSteps.look`)."""
    return _STEPS.look(time.time_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))


def elapsed_ns(since: int, now: int) -> int:
    """Nanoseconds from wall instant ``since`` to wall instant ``now``, without the forward
    steps this process saw the wall clock make in between."""
    look()
    return _STEPS.elapsed(since, now)
