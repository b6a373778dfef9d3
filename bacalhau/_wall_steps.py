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

A node keeps the steps in its data dir (:func:`remember_in`), with the two clocks as they
were after the last one: restarted on the same boot, it sees a step made while it was down
(the wall clock moved against the boot-time clock), and one made before still counts. Across
a reboot the boot-time clock starts again, so a step made while the machine was down cannot
be told from the time it was down; steps seen before still count.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["WALL_STEPS_FILE", "WallSteps", "elapsed_ns", "look", "remember_in"]

log = logging.getLogger(__name__)

#: Smaller gaps between the two clocks are their drift and the reading's jitter, not a step.
MIN_STEP_NS = 1_000_000_000
#: Where a node keeps them, in its data dir.
WALL_STEPS_FILE = "wall-clock-steps.json"
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
            step = self._record(last, wall, steady)
        if step:
            log.warning(
                "the wall clock stepped forward by %.1fs: timeouts counted from earlier "
                "instants leave the step out",
                step / 1e9,
            )
        return step

    def resume(self, saved: dict[str, Any], wall: int, steady: int, *, same_boot: bool) -> int:
        """Take back the steps of :meth:`saved` (an earlier run's); on the same boot, compare
        the clocks with those it saved too, and return the forward step made since (0 if
        none)."""
        steps = [(int(bound), int(step)) for bound, step in saved.get("steps", [])]
        last_wall, last_steady = saved.get("wall_ns"), saved.get("boottime_ns")
        with self._lock:
            self._steps = sorted({*steps, *self._steps})[-_KEPT:]
            self._last = (wall, steady)
            if not same_boot or not isinstance(last_wall, int) or not isinstance(last_steady, int):
                return 0
            return self._record((last_wall, last_steady), wall, steady)

    def saved(self) -> dict[str, Any]:
        """The steps and the clocks at the last look, as :meth:`resume` takes them."""
        with self._lock:
            wall, steady = self._last if self._last is not None else (None, None)
            return {"wall_ns": wall, "boottime_ns": steady, "steps": list(self._steps)}

    def _record(self, last: tuple[int, int], wall: int, steady: int) -> int:
        expected = last[0] + (steady - last[1])
        step = wall - expected
        if step < MIN_STEP_NS:
            return 0
        self._steps.append((expected, step))
        del self._steps[:-_KEPT]
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
#: Where this process keeps its steps (see :func:`remember_in`).
_kept_in: Path | None = None
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def look() -> int:
    """Compare this process's wall clock with its boot-time clock now (see
    :meth:`WallSteps.look`)."""
    step = _STEPS.look(time.time_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    if step and _kept_in is not None:
        _save(_kept_in)
    return step


def remember_in(path: Path) -> None:
    """Keep this process's steps in ``path`` (a node's data dir): take back those an earlier
    run kept there, and see a step made while it was down (on the same boot)."""
    global _kept_in
    wall, steady, boot = time.time_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME), _boot_id()
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        same_boot = bool(boot) and saved.get("boot_id") == boot
        step = _STEPS.resume(saved, wall, steady, same_boot=same_boot)
    except FileNotFoundError:
        step = _STEPS.resume({}, wall, steady, same_boot=False)
    except (OSError, ValueError, TypeError) as err:
        log.warning("%s cannot be read (%s): the wall clock's earlier steps are lost", path, err)
        step = _STEPS.resume({}, wall, steady, same_boot=False)
    if step:
        log.warning(
            "the wall clock stepped forward by %.1fs while this node was down: timeouts "
            "counted from earlier instants leave the step out",
            step / 1e9,
        )
    _kept_in = path
    _save(path)


def _save(path: Path) -> None:
    state = {"boot_id": _boot_id(), **_STEPS.saved()}
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(state))
        os.replace(temporary, path)
    except OSError as err:
        log.warning("cannot keep the wall clock's steps in %s: %s", path, err)
        with contextlib.suppress(OSError):
            temporary.unlink()


@functools.cache
def _boot_id() -> str:
    """This boot's ID (read once: it changes only with a reboot), "" where there is none."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def elapsed_ns(since: int, now: int) -> int:
    """Nanoseconds from wall instant ``since`` to wall instant ``now``, without the forward
    steps this process saw the wall clock make in between."""
    look()
    return _STEPS.elapsed(since, now)
