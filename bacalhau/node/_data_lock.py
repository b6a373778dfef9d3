"""One node per data directory: a lock held for as long as the node runs.

Two nodes started on one data directory would share its identity, job or execution store
and results: a requester would schedule every job twice, a compute node run executions
twice and report under one node ID from two addresses. The lock is ``flock`` on
``<data-dir>/node.lock``: the kernel releases it when the process ends, however it ends
(SIGKILL included), so a crash never leaves a stale lock behind. The file names the PID of
the holder, for the error.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from bacalhau.errors import InvalidConfiguration

__all__ = ["LOCK_FILE", "lock_data_dir"]

LOCK_FILE = "node.lock"


def lock_data_dir(data_dir: Path) -> int:
    """Take ``data_dir``'s lock; returns the descriptor that holds it (close it to release).
    :class:`InvalidConfiguration` when another process holds it."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise InvalidConfiguration(
            f"data dir {data_dir} is in use by another node"
            + (f" (process {holder})" if holder else ""),
            hint="stop that node first, or give this one a data dir of its own (--data-dir)",
            details={"Field": "data_dir"},
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return ""
