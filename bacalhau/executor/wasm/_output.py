"""A run's stdout and stderr, copied into the results files up to a size cap.

wasmtime writes the module's two streams into pipes (it opens their write ends by their
``/proc/self/fd`` paths), and one copier thread, shared by every run of the process, copies
them into the ``stdout`` and ``stderr`` files: the first ``limit`` bytes of each as they come,
so the logs can be followed while the job runs, and the rest read and dropped, so a runaway
module can fill neither the disk nor the pipe. A container's streams are capped the same way
(see ``docker/_follow``). One thread for all runs rather than one per run: starting and
joining a thread costs more than copying a short run's output.

The copier takes on a run's pipes once the run has lasted :data:`TICK_SECONDS`, not at
once: a run that ends before then, as most do, copies its own output when it finishes, and
the copier is woken for it at most once (when it was asleep with nothing due). A run's
output reaches its files within a tick, and a module writing more than a pipe holds in
that time waits for it.

Pipes rather than wasmtime's custom-output callbacks: those are called from wasmtime's own
runtime threads, and such a thread that has entered Python aborts the process when it exits.

A run on the event loop's own thread (see ``_inline``) writes into memory files instead
(:class:`MemoryStreams`), copied into the result files up to the cap once it has stopped: no
pipes, no copier thread to wake. Its slice of CPU time bounds what it can write before it
stops or yields (a few MB at most), and a write there never waits for a reader, which a pipe
would make it do with the loop's thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import threading
import time
from pathlib import Path
from typing import BinaryIO

from bacalhau.executor._results import StreamHead
from bacalhau.models import RUN_OUTPUT_LIMIT

__all__ = ["CappedStreams", "MemoryStreams"]

_log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
#: How often the copier takes on the pipes of runs started since its last look.
TICK_SECONDS = 0.01
#: After the run, how long to wait for the copier to drain the pipes (it never blocks long).
_JOIN_SECONDS = 5.0


class CappedStreams:
    """Two pipes from a run to its ``stdout``/``stderr`` files, each capped at ``limit``.

    Give wasmtime :attr:`stdout_path` and :attr:`stderr_path`, call :meth:`handed_over` once
    it has opened them, and :meth:`finish` once the module has stopped. Once the copier has
    taken the read ends and the files, they are its own: it closes them once it has drained
    the pipes, so a run whose finish gave up waiting can never have them reused under it.
    The first bytes of each stream are kept as they are copied (see :meth:`heads`), so the
    run's summary needs no second read of the files.
    """

    def __init__(self, stdout: Path, stderr: Path, limit: int) -> None:
        self.limit = limit
        self.dropped = [0, 0]
        self._written = [0, 0]
        self._heads = [bytearray(), bytearray()]
        #: Whether the files hold exactly what was counted (no write failed half-way).
        self._exact = True
        #: Whether the pipes were drained to their end and the files closed.
        self._finished = False
        self._writers: list[int] = []
        self._readers: list[int] = []
        self._files: list[BinaryIO] = []
        self._done = threading.Event()
        try:
            for _ in range(2):
                r, w = os.pipe()
                self._readers.append(r)
                self._writers.append(w)
            # Unbuffered: what the module wrote is in the file as soon as it is read here.
            self._files = [_emptied(stdout), _emptied(stderr)]
        except BaseException:
            self._release()
            raise
        self._open = [True, True]
        self._writer_fds = (self._writers[0], self._writers[1])
        _COPIER.watch(self)

    @property
    def writer_fds(self) -> tuple[int, int]:
        """The write ends of the stdout and stderr pipes, for a writer in this process (the
        deterministic file system); they stay open until :meth:`finish`."""
        return self._writer_fds

    @property
    def stdout_path(self) -> str:
        return f"/proc/self/fd/{self._writers[0]}"

    @property
    def stderr_path(self) -> str:
        return f"/proc/self/fd/{self._writers[1]}"

    def handed_over(self) -> None:
        """wasmtime holds its own write ends now: close ours, so its closing means EOF."""
        self._close_writers()

    def finish(self) -> tuple[int, int]:
        """Copy what is left in the pipes, close everything; return (stdout, stderr) dropped."""
        # Ours closed first: the module has stopped, so what it wrote is in the pipes already.
        self._close_writers()
        if _COPIER.drain(self):
            self._finished = self._done.wait(_JOIN_SECONDS)
        else:
            self._drain()  # the copier never took it on: copy it here
            self._finished = True
        return self.dropped[0], self.dropped[1]

    def heads(self) -> tuple[StreamHead, StreamHead] | None:
        """After :meth:`finish`, the first bytes of ``stdout`` and ``stderr`` (up to
        :data:`~bacalhau.models.RUN_OUTPUT_LIMIT`) and the size of each file; None when the
        files may hold something else (the copy did not end, or a write to them failed)."""
        if not (self._finished and self._exact):
            return None
        return (
            (bytes(self._heads[0]), self._written[0]),
            (bytes(self._heads[1]), self._written[1]),
        )

    def _close_writers(self) -> None:
        while self._writers:
            with contextlib.suppress(OSError):
                os.close(self._writers.pop())

    def _release(self) -> None:
        """Close the read ends and the files (the copier, once done with them)."""
        self._close_writers()
        while self._readers:
            with contextlib.suppress(OSError):
                os.close(self._readers.pop())
        for f in self._files:
            f.close()
        self._done.set()

    def _read(self, i: int) -> bool:
        """Copy one read of stream ``i`` within the cap; False at end of stream."""
        data = os.read(self._readers[i], _READ_SIZE)
        if not data:
            self._open[i] = False
            return False
        room = self.limit - self._written[i]
        kept = data if room >= len(data) else data[: max(room, 0)]
        if kept:
            head = self._heads[i]
            if len(head) < RUN_OUTPUT_LIMIT:
                head += kept[: RUN_OUTPUT_LIMIT - len(head)]
            try:
                written = self._files[i].write(kept)
            except BaseException:
                self._exact = False
                raise
            if written != len(kept):
                self._exact = False  # (a short write: a full disk) the file is what it is
            self._written[i] += len(kept)
        self.dropped[i] += len(data) - len(kept)
        return True

    def _drain(self) -> None:
        """Read what is left without waiting (the module has stopped), then release."""
        try:
            for i, fd in enumerate(self._readers):
                if not self._open[i]:
                    continue
                os.set_blocking(fd, False)
                with contextlib.suppress(BlockingIOError):
                    while self._read(i):
                        pass
        finally:
            self._release()


class MemoryStreams:
    """A run's two streams written into memory files, copied into ``stdout``/``stderr`` up
    to ``limit`` once the run has stopped.

    The same protocol as :class:`CappedStreams`, for a run whose output is bounded by its
    slice (see the module's docstring). Memory files rather than the result files
    themselves: wasmtime opens its stream files truncating them, and ext4 writes a file
    truncated and written again to disk when it is closed (see :func:`_emptied`).
    """

    def __init__(self, stdout: Path, stderr: Path, limit: int) -> None:
        self.limit = limit
        self._paths = (stdout, stderr)
        self._fds: list[int] = []
        self._heads: tuple[StreamHead, StreamHead] | None = None
        try:
            for name in ("stdout", "stderr"):
                self._fds.append(os.memfd_create(name, os.MFD_CLOEXEC))
        except BaseException:
            self._close()
            raise

    @property
    def writer_fds(self) -> tuple[int, int]:
        return self._fds[0], self._fds[1]

    @property
    def stdout_path(self) -> str:
        return f"/proc/self/fd/{self._fds[0]}"

    @property
    def stderr_path(self) -> str:
        return f"/proc/self/fd/{self._fds[1]}"

    def handed_over(self) -> None:
        """wasmtime opened the memory files itself; ours stay open to copy them out."""

    def finish(self) -> tuple[int, int]:
        """Copy each stream into its file up to the cap and keep its head; close the memory
        files; return (stdout, stderr) dropped."""
        dropped = [0, 0]
        heads: list[StreamHead] = []
        try:
            for i, fd in enumerate(self._fds):
                size = os.fstat(fd).st_size
                kept = min(size, self.limit)
                dropped[i] = size - kept
                head = os.pread(fd, min(kept, RUN_OUTPUT_LIMIT), 0)
                out = _emptied_fd(self._paths[i], os.O_WRONLY)
                try:
                    _copy_all(fd, out, kept)
                finally:
                    os.close(out)
                heads.append((head, kept))
            self._heads = (heads[0], heads[1])
        finally:
            self._close()
        return dropped[0], dropped[1]

    def heads(self) -> tuple[StreamHead, StreamHead] | None:
        """After :meth:`finish`, the first bytes of each file and its size."""
        return self._heads

    def _close(self) -> None:
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.pop())


def _copy_all(src: int, dst: int, count: int) -> None:
    """The first ``count`` bytes of ``src`` into ``dst`` (from their starts)."""
    offset = 0
    while offset < count:
        sent = os.sendfile(dst, src, offset, count - offset)
        if sent == 0:
            raise OSError(f"the stream ended {count - offset} bytes early")
        offset += sent


def _emptied_fd(path: Path, mode: int) -> int:
    """``path`` opened (``mode``), empty; see :func:`_emptied`."""
    fd = os.open(path, mode | os.O_CREAT, 0o666)
    try:
        if os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _emptied(path: Path) -> BinaryIO:
    """``path`` opened for writing, empty, unbuffered. An empty file made ahead (see
    ``compute/_spare_dirs``) is kept as it is: ext4 flushes a file truncated to zero and
    written again when it is closed, which would cost every run a disk write."""
    fd = _emptied_fd(path, os.O_WRONLY)
    try:
        return open(fd, "wb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


class _Copier:
    """The thread copying every run's pipes, started at the first run. It takes on each
    run that has waited a tick, and otherwise idles in ``select`` until the pipes it holds
    have something, a waiting run is due, or a run asks it (through its own pipe) to wake:
    the first to wait while it sleeps with nothing due, or one finished whose pipes it
    holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Runs waiting to be taken on (by identity, with when they began to wait), and runs
        #: finished whose pipes it holds.
        self._waiting: dict[int, tuple[CappedStreams, float]] = {}
        self._drains: collections.deque[CappedStreams] = collections.deque()
        self._thread: threading.Thread | None = None
        #: Whether the copier is (about to be) asleep with nothing due: it must be woken.
        self._asleep = True
        self._wake_w = -1

    def watch(self, streams: CappedStreams) -> None:
        """Have the copier take ``streams`` on once it has waited a tick."""
        with self._lock:
            self._start()
            self._waiting[id(streams)] = (streams, time.monotonic())
            wake, self._asleep = self._asleep, False
        if wake:
            self._wake()

    def drain(self, streams: CappedStreams) -> bool:
        """Have the copier drain and release ``streams``; False when it never took them on
        (they are the caller's again, to drain itself)."""
        with self._lock:
            if self._waiting.pop(id(streams), None) is not None:
                return False
            self._drains.append(streams)
            self._asleep = False
        self._wake()
        return True

    def _start(self) -> None:
        if self._thread is None:
            wake_r, self._wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            self._thread = threading.Thread(
                target=self._run, args=(wake_r,), name="wasm-output", daemon=True
            )
            self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _due(self) -> tuple[list[CappedStreams], float | None]:
        """(Under the lock.) The runs that have waited a tick, taken off the list, and the
        seconds until the next is due (None when none waits)."""
        now = time.monotonic()
        due: list[CappedStreams] = []
        next_in: float | None = None
        for key, (streams, since) in list(self._waiting.items()):
            left = since + TICK_SECONDS - now
            if left <= 0:
                due.append(streams)
                del self._waiting[key]
            elif next_in is None or left < next_in:
                next_in = left
        return due, next_in

    def _run(self, wake_r: int) -> None:
        # A daemon thread: it never keeps the process alive.
        selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ)
        timeout: float | None = None
        while True:
            for key, _ in selector.select(timeout):
                if key.fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    continue
                streams, i = key.data
                try:
                    more = streams._read(i)
                except OSError:
                    more = False
                if not more:
                    selector.unregister(key.fd)
            with self._lock:
                taken, timeout = self._due()
                self._asleep = timeout is None
                drains = list(self._drains)
                self._drains.clear()
            for streams in taken:
                try:
                    for i, fd in enumerate(streams._readers):
                        selector.register(fd, selectors.EVENT_READ, (streams, i))
                except Exception:  # one run's broken pipes must not stop the others' copies
                    _log.exception("copying a WASM run's output failed")
                    drains.append(streams)
            for streams in drains:
                for fd in streams._readers:
                    if fd in selector.get_map():
                        selector.unregister(fd)
                try:
                    streams._drain()
                except Exception:
                    _log.exception("copying a WASM run's output failed")
                    streams._release()


_COPIER = _Copier()
