"""The fixed instant of a deterministic run's files, and its mark on the published results.

Inside the run the module sees the times of the virtual file system (``_vfs_tree``): entries
that existed before the run carry :data:`FIXED_TIME_NS`, what it writes the virtual clock. On
the host, a result folder is stamped with :data:`FIXED_TIME_NS` before the run and again after
it (everything in it), so the published results carry no trace of when the node wrote them.
"""

from __future__ import annotations

import os
from pathlib import Path

from bacalhau.executor._walk import walk
from bacalhau.executor.wasm._determinism import EPOCH_NS

__all__ = ["FIXED_TIME_NS", "fix_times"]

#: Time of every entry that existed before a deterministic run, and of every published result
#: entry after it: the instant the deterministic clocks start at.
FIXED_TIME_NS = EPOCH_NS


def fix_times(root: Path) -> None:
    """Set the access and modification time of ``root`` and everything under it (links
    themselves, not their targets) to :data:`FIXED_TIME_NS`; children before their directory,
    since creating or touching a child changes its directory's modification time."""
    times = (FIXED_TIME_NS, FIXED_TIME_NS)
    # Reversed top-down order: every folder after the folders below it.
    for dirpath, dirnames, filenames in reversed(list(walk(root))):
        for name in (*filenames, *dirnames):
            os.utime(os.path.join(dirpath, name), ns=times, follow_symlinks=False)
        os.utime(dirpath, ns=times, follow_symlinks=False)
