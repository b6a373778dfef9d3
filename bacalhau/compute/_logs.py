"""Reading an execution's output while it is written: the files are the source of truth.

Executors write ``stdout`` and ``stderr`` into the execution's results directory as the
workload prints (see :mod:`bacalhau.executor`). A :class:`LogReader` reads them from an offset
and, when following, waits for them to grow until the execution ends; then it reads what is
left and stops. Nothing is held in memory beyond one chunk per stream, and a reader that is
not consumed reads nothing: the follower sets the pace, never the workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bacalhau.executor import STDERR_FILE, STDOUT_FILE
from bacalhau.models import LogChunk, LogStream, now_ns

__all__ = [
    "LOG_CHUNK_BYTES",
    "LogReader",
    "discard_files_keeping_logs",
    "discard_results_keeping_logs",
    "tail_offset",
]

#: Largest chunk read at once (well under gRPC's 4 MiB message limit).
LOG_CHUNK_BYTES = 64 * 1024
#: How often a follower looks for new output; bounds the delay a line takes to leave the node.
DEFAULT_POLL_SECONDS = 0.02

_FILES = ((LogStream.STDOUT, STDOUT_FILE), (LogStream.STDERR, STDERR_FILE))


def tail_offset(path: Path, lines: int, *, block: int = LOG_CHUNK_BYTES) -> int:
    """The offset at which the last ``lines`` lines of ``path`` start (0 if it has fewer).

    A final line without its newline counts as a line. Reads backwards a block at a time.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        end = size
        if size and os.pread(fd, 1, size - 1) == b"\n":
            end -= 1  # the newline ending the last line does not start another
        seen = 0
        pos = end
        while pos > 0:
            start = max(0, pos - block)
            data = os.pread(fd, pos - start, start)
            i = len(data)
            while True:
                i = data.rfind(b"\n", 0, i)
                if i < 0:
                    break
                seen += 1
                if seen == lines:
                    return start + i + 1
            pos = start
        return 0
    finally:
        os.close(fd)


class LogReader:
    """Streams the ``stdout`` and ``stderr`` files of one results directory.

    ``finished`` tells whether the execution has ended (nothing more will be written); it is
    asked only between reads, so it may be cheap or not.
    """

    def __init__(
        self,
        results_dir: Path,
        *,
        finished: Callable[[], bool],
        poll_interval: float = DEFAULT_POLL_SECONDS,
        chunk_bytes: int = LOG_CHUNK_BYTES,
    ) -> None:
        self._dir = results_dir
        self._finished = finished
        self._poll = poll_interval
        self._chunk = chunk_bytes

    async def chunks(self, *, follow: bool, tail: int = 0) -> AsyncIterator[LogChunk]:
        """What the streams hold now (from their last ``tail`` lines if ``tail`` > 0), then,
        when ``follow``, every new chunk until the execution ends."""
        offsets: dict[LogStream, int] = {}
        for stream, name in _FILES:
            offsets[stream] = tail_offset(self._dir / name, tail) if tail > 0 else 0
        fds: dict[LogStream, int] = {}
        try:
            while True:
                # Asked before reading: output written before the end is then read below.
                done = not follow or self._finished()
                progressed = False
                for stream, name in _FILES:
                    fd = fds.get(stream)
                    if fd is None:
                        fd = _open(self._dir / name)
                        if fd is None:
                            continue
                        fds[stream] = fd
                    while True:
                        data = os.pread(fd, self._chunk, offsets[stream])
                        if not data:
                            break
                        progressed = True
                        yield LogChunk(stream, offsets[stream], data, now_ns())
                        offsets[stream] += len(data)
                        if len(data) < self._chunk:
                            break
                if done:
                    return
                if not progressed:
                    await asyncio.sleep(self._poll)
        finally:
            for fd in fds.values():
                os.close(fd)


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def discard_results_keeping_logs(results_dir: Path) -> None:
    """Delete a published results directory except its ``stdout`` and ``stderr`` files.

    Once a publisher holds its own copy the rest is not needed here, but the output stays so
    that followers can replay it until the execution is forgotten (housekeeping).
    """
    for folder in discard_files_keeping_logs(results_dir):
        shutil.rmtree(folder, ignore_errors=True)


def discard_files_keeping_logs(results_dir: Path) -> list[str]:
    """The first, short part of :func:`discard_results_keeping_logs`: delete the files of
    ``results_dir`` (``exitCode``, links) except ``stdout`` and ``stderr``, and return the
    folders left, whose removal may take long (most results have none)."""
    keep = {STDOUT_FILE, STDERR_FILE}
    try:
        entries = list(os.scandir(results_dir))
    except FileNotFoundError:
        return []
    folders: list[str] = []
    for entry in entries:
        if entry.name in keep and entry.is_file(follow_symlinks=False):
            continue
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    return folders
