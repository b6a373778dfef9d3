"""A run's stdout and stderr, copied into the results files up to a size cap.

wasmtime writes the module's two streams into pipes (it opens their write ends by their
``/proc/self/fd`` paths), and one thread per run copies them into the ``stdout`` and
``stderr`` files: the first ``limit`` bytes of each as they come, so the logs can be followed
while the job runs, and the rest read and dropped, so a runaway module can fill neither the
disk nor the pipe. A container's streams are capped the same way (see ``docker/_follow``).

Pipes rather than wasmtime's custom-output callbacks: those are called from wasmtime's own
runtime threads, and such a thread that has entered Python aborts the process when it exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from pathlib import Path
from typing import BinaryIO

__all__ = ["CappedStreams"]

_READ_SIZE = 64 * 1024
#: After the run, how long to wait for the copier to drain the pipes (it never blocks long).
_JOIN_SECONDS = 5.0


class CappedStreams:
    """Two pipes from a run to its ``stdout``/``stderr`` files, each capped at ``limit``.

    Give wasmtime :attr:`stdout_path` and :attr:`stderr_path`, call :meth:`handed_over` once
    it has opened them, and :meth:`finish` once the module has stopped.
    """

    def __init__(self, stdout: Path, stderr: Path, limit: int) -> None:
        self.limit = limit
        self.dropped = [0, 0]
        self._written = [0, 0]
        self._fds: list[int] = []
        self._files: list[BinaryIO] = []
        try:
            out_r, out_w = self._pipe()
            err_r, err_w = self._pipe()
            self._wake_r, self._wake_w = self._pipe()
            self._writers = [out_w, err_w]
            self._readers = [out_r, err_r]
            # Unbuffered: what the module wrote is in the file as soon as it is read here.
            self._files = [open(stdout, "wb", buffering=0), open(stderr, "wb", buffering=0)]  # noqa: SIM115
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._copy, name="wasm-output", daemon=True)
        self._thread.start()

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._fds += [r, w]
        return r, w

    @property
    def writer_fds(self) -> tuple[int, int]:
        """The write ends of the stdout and stderr pipes, for a writer in this process (the
        deterministic file system); they stay open until :meth:`finish`."""
        return self._writers[0], self._writers[1]

    @property
    def stdout_path(self) -> str:
        return f"/proc/self/fd/{self._writers[0]}"

    @property
    def stderr_path(self) -> str:
        return f"/proc/self/fd/{self._writers[1]}"

    def handed_over(self) -> None:
        """wasmtime holds its own write ends now: close ours, so its closing means EOF."""
        for fd in self._writers:
            self._close_fd(fd)

    def finish(self) -> tuple[int, int]:
        """Copy what is left in the pipes, close everything; return (stdout, stderr) dropped."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(_JOIN_SECONDS)
        self.close()
        return self.dropped[0], self.dropped[1]

    def close(self) -> None:
        for fd in list(self._fds):
            self._close_fd(fd)
        for f in self._files:
            f.close()

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _copy(self) -> None:
        open_ = {fd: i for i, fd in enumerate(self._readers)}
        while open_:
            ready, _, _ = select.select([*open_, self._wake_r], [], [])
            if self._wake_r in ready:
                # The module has stopped: everything it wrote is in the pipes already.
                for fd, i in open_.items():
                    os.set_blocking(fd, False)
                    with contextlib.suppress(BlockingIOError):
                        while self._take(i, os.read(fd, _READ_SIZE)):
                            pass
                return
            for fd in ready:
                if not self._take(open_[fd], os.read(fd, _READ_SIZE)):
                    del open_[fd]

    def _take(self, i: int, data: bytes) -> bool:
        """Write ``data`` to stream ``i`` within the cap; False at end of stream."""
        if not data:
            return False
        room = self.limit - self._written[i]
        if room >= len(data):
            self._files[i].write(data)
            self._written[i] += len(data)
        else:
            if room > 0:
                self._files[i].write(data[:room])
                self._written[i] += room
            self.dropped[i] += len(data) - max(room, 0)
        return True
