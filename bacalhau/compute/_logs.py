"""Reading an execution's output while it is written: the files are the source of truth.

Executors write ``stdout`` and ``stderr`` into the execution's results directory as the
workload prints (see :mod:`bacalhau.executor`). A :class:`LogReader` reads them from an offset
and, when following, waits for them to grow until the execution ends; then it reads what is
left and stops. Nothing is held in memory beyond one chunk per stream, and a reader that is
not consumed reads nothing: the follower sets the pace, never the workload.

A finished execution whose folder holds nothing but small logs keeps them in the node's store
(:func:`logs_to_keep`) and gives the folder to a later execution. :class:`ExecutionLogs`
reads from whichever holds them, and tells which folders readers hold, which must stay.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

from bacalhau.compute._spare_dirs import layout_entries
from bacalhau.executor import STDERR_FILE, STDOUT_FILE
from bacalhau.models import LogChunk, LogRequest, LogStream, now_ns

__all__ = [
    "KEPT_LOGS_MAX",
    "LOG_CHUNK_BYTES",
    "ExecutionLogs",
    "LogReader",
    "discard_files_keeping_logs",
    "discard_keeping_logs",
    "discard_results_keeping_logs",
    "logs_to_keep",
    "tail_offset",
]

#: Largest chunk read at once (well under gRPC's 4 MiB message limit).
LOG_CHUNK_BYTES = 64 * 1024
#: How often a follower looks for new output; bounds the delay a line takes to leave the node.
DEFAULT_POLL_SECONDS = 0.02
#: Largest output (stdout and stderr together) a finished execution keeps in the node's store;
#: one with more keeps its folder.
KEPT_LOGS_MAX = 256 * 1024

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
        return _tail_start(lambda start, n: os.pread(fd, n, start), size, lines, block)
    finally:
        os.close(fd)


def _tail_start(read: Callable[[int, int], bytes], size: int, lines: int, block: int) -> int:
    """Where the last ``lines`` lines of ``size`` bytes start; ``read(start, n)`` reads."""
    end = size
    if size and read(size - 1, 1) == b"\n":
        end -= 1  # the newline ending the last line does not start another
    seen = 0
    pos = end
    while pos > 0:
        start = max(0, pos - block)
        data = read(start, pos - start)
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

    async def chunks(
        self, *, follow: bool, tail: int = 0, start: Mapping[LogStream, int] | None = None
    ) -> AsyncIterator[LogChunk]:
        """What the streams hold now (from their last ``tail`` lines if ``tail`` > 0, from
        the bytes ``start`` gives if it is given), then, when ``follow``, every new chunk
        until the execution ends."""
        offsets: dict[LogStream, int] = {}
        for stream, name in _FILES:
            if start is not None:
                offsets[stream] = start.get(stream, 0)
            else:
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


class ExecutionLogs:
    """A node's execution logs: read from the results folder while it exists, else from what
    the finished execution kept in the store (``kept``), its folder reused since.

    A folder that a reader holds must not be reused, or its files would be emptied under the
    reader: :meth:`in_use` tells. A reader counts from its first step, in which it also
    chooses where to read; a folder is given back in one step too, so the two never cross.
    """

    def __init__(
        self,
        results_dir: Callable[[str], Path],
        kept: Callable[[str], tuple[bytes, bytes] | None],
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self._results_dir = results_dir
        self._kept = kept
        self._poll = poll_interval
        self._readers: collections.Counter[str] = collections.Counter()

    def in_use(self, execution_id: str) -> bool:
        """Whether a reader holds the execution's results folder."""
        return self._readers[execution_id] > 0

    async def chunks(
        self, request: LogRequest, *, finished: Callable[[], bool]
    ) -> AsyncIterator[LogChunk]:
        """The output ``request`` asks for, as :meth:`LogReader.chunks` gives it, from
        either source."""
        execution_id, follow, tail, start = (
            request.execution_id,
            request.follow,
            request.tail,
            request.starts(),
        )
        self._readers[execution_id] += 1
        try:
            folder = self._results_dir(execution_id)
            kept = None if folder.is_dir() else self._kept(execution_id)
            if kept is not None:
                for chunk in _chunks_of(kept, tail, start):
                    yield chunk
                return
            reader = LogReader(folder, finished=finished, poll_interval=self._poll)
            async for chunk in reader.chunks(follow=follow, tail=tail, start=start):
                yield chunk
        finally:
            self._readers[execution_id] -= 1
            if not self._readers[execution_id]:
                del self._readers[execution_id]


def _chunks_of(
    kept: tuple[bytes, bytes], tail: int, start: Mapping[LogStream, int] | None
) -> Iterator[LogChunk]:
    for (stream, _), data in zip(_FILES, kept, strict=True):
        if start is not None:
            offset = start.get(stream, 0)
        elif tail > 0:
            offset = _tail_start(_slicer(data), len(data), tail, LOG_CHUNK_BYTES)
        else:
            offset = 0
        while offset < len(data):
            piece = data[offset : offset + LOG_CHUNK_BYTES]
            yield LogChunk(stream, offset, piece, now_ns())
            offset += len(piece)


def _slicer(data: bytes) -> Callable[[int, int], bytes]:
    return lambda start, n: data[start : start + n]


def logs_to_keep(results_dir: Path, limit: int = KEPT_LOGS_MAX) -> tuple[bytes, bytes] | None:
    """The stdout and stderr of a finished execution, when its results folder holds nothing
    but (some of) the layout's files and they come to at most ``limit`` bytes: then they can
    be kept in the store and the folder reused. None otherwise (or when the folder is gone).
    The exit code is not lost: the execution's record holds it."""
    try:
        found = layout_entries(results_dir)
        if found is None:
            return None
        sizes = [
            found[name].stat(follow_symlinks=False).st_size if name in found else 0
            for _, name in _FILES
        ]
        if sum(sizes) > limit:
            return None
        out, err = (
            (results_dir / name).read_bytes() if size else b""
            for size, (_, name) in zip(sizes, _FILES, strict=True)
        )
        return out, err
    except OSError:
        return None


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
    _remove_trees(discard_files_keeping_logs(results_dir))


async def discard_keeping_logs(results_dir: Path) -> None:
    """:func:`discard_results_keeping_logs` from the event loop: the layout's files go at
    once (a few system calls); only folders need a thread."""
    folders = discard_files_keeping_logs(results_dir)
    if folders:
        await asyncio.to_thread(_remove_trees, folders)


def _remove_trees(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


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
