"""Which runs may take the event loop's own thread, and cleaning up after one that yielded.

Handing a run to a worker thread and its result back costs more CPU than a short module's
whole run (thread wake-ups, the GIL passed back and forth, the loop woken from another
thread), so a module known to end quickly runs on the loop's thread instead. The bet is
checked, never trusted:

- a module is known short once one of its runs on a worker took under half a slice of
  CPU time in WebAssembly; a module compiled but never run, or seen run longer, stays on
  the workers;
- an inline run has a slice of the thread's CPU time (see ``_interrupt``): past it, or at a
  WASI call that would sleep, it traps as *yielded*, its results folder is emptied and it
  runs again from the start on a worker. Nothing of the first attempt was seen by anyone:
  its streams and result folders are the ones emptied, and the module can reach nothing
  else. A deterministic run then writes the same bytes; any run gets its full time limit
  less the slice it used;
- a module that yielded once is never run inline again (by this process), so one module
  costs the loop at most one slice and one epoch tick.

Runs with data inputs always take a worker: an input could hold something whose read never
returns (a FIFO), which a worker survives and the loop would not.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InlinePolicy", "InlineRunStats", "empty_folder"]


@dataclass(frozen=True, slots=True)
class InlineRunStats:
    """Runs made on the event loop's thread, and those of them that yielded to a worker."""

    inline: int
    yielded: int


class InlinePolicy:
    """What is known of each module's run time (by module digest; oldest forgotten first)."""

    def __init__(self, slice_seconds: float, capacity: int) -> None:
        if slice_seconds < 0:
            raise ValueError(f"the inline slice must not be negative, got {slice_seconds}")
        self.slice_seconds = slice_seconds
        self._capacity = max(1, capacity)
        #: digest -> True (its runs ended within half a slice) or False (one yielded).
        self._short: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()  # written from worker threads, read on the loop
        self._inline = 0
        self._yielded = 0

    def may_run_inline(self, digest: str) -> bool:
        """Whether a run of this module may start on the event loop's thread."""
        return self.slice_seconds > 0 and self._short.get(digest) is True

    def ran(self, digest: str, seconds: float) -> None:
        """A run of the module took ``seconds`` of WebAssembly (a worker's, or inline)."""
        with self._lock:
            known = self._short.get(digest)
            if known is False:
                return  # it yielded once: it stays on the workers
            if known is None and seconds < self.slice_seconds / 2:
                self._short[digest] = True
                while len(self._short) > self._capacity:
                    self._short.popitem(last=False)

    def started_inline(self) -> None:
        with self._lock:
            self._inline += 1

    def yielded(self, digest: str) -> None:
        """An inline run of the module used up its slice or was about to block."""
        with self._lock:
            self._short[digest] = False
            self._short.move_to_end(digest)
            self._yielded += 1

    def stats(self) -> InlineRunStats:
        with self._lock:
            return InlineRunStats(self._inline, self._yielded)


def empty_folder(folder: Path) -> None:
    """Remove everything in ``folder`` (never following a link), keeping the folder."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
