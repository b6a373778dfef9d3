"""Results folders made ahead of the executions that take them.

Making a folder or a file costs a new inode: 150 to 500 microseconds of kernel time each on
ext4 in a virtual machine (measured), where renaming a folder costs about 20. A short
execution made four (its folder, ``stdout``, ``stderr``, ``exitCode``), the largest part of
its time on the compute node after the run itself. So a worker thread makes a few folders
ahead, each with the layout's three files empty (what every results layout holds: see
``executor/_results.py``), and an execution takes one by renaming it to its own name. The
executors then open those files rather than create them. With none ready (a burst larger
than the reserve), an execution makes its own folder as before.

The thread makes the next folders once an execution has ended (:meth:`SpareDirs.replenish`),
not when one is taken: the work is the same, but off every execution's path, where on a
machine with few cores it would compete with the execution that just took a folder.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

from bacalhau.executor import EXIT_CODE_FILE, STDERR_FILE, STDOUT_FILE

__all__ = ["SpareDirs"]

_log = logging.getLogger(__name__)

#: What a spare folder holds: the files every results layout has, empty.
LAYOUT = (STDOUT_FILE, STDERR_FILE, EXIT_CODE_FILE)
#: Folders kept ready: enough for the executions a node starts in one burst of asks.
DEFAULT_RESERVE = 8


class SpareDirs:
    """Empty results folders under ``<root>/.spare``, made by a daemon thread started at the
    first :meth:`take` and woken by :meth:`replenish`; :meth:`close` stops it."""

    def __init__(self, root: Path, *, reserve: int = DEFAULT_RESERVE) -> None:
        self._dir = root / ".spare"
        self._reserve = reserve
        self._ready: collections.deque[Path] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def ready(self) -> int:
        """How many folders are ready to be taken."""
        with self._lock:
            return len(self._ready)

    def take(self, target: Path) -> bool:
        """Rename a spare folder to ``target`` (which must not exist); False when none is
        ready or the rename failed (the caller makes ``target`` itself)."""
        self.start()
        with self._lock:
            spare = self._ready.popleft() if self._ready else None
        if spare is None:
            return False
        try:
            os.rename(spare, target)
        except OSError:
            # ``target`` exists (an earlier attempt's folder) or its parent does not: the
            # caller's way handles both. The spare is not trusted again.
            shutil.rmtree(spare, ignore_errors=True)
            return False
        return True

    def replenish(self) -> None:
        """Make folders for those taken (call once an execution has ended)."""
        self._wake.set()

    def close(self) -> None:
        """Stop making folders (those made stay for the next start)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def start(self) -> None:
        """Start making folders (the first :meth:`take` does; it is a no-op after that)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._fill, name="spare-results-dirs", daemon=True
            )
            self._thread.start()

    def _fill(self) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._adopt()
            while not self._closed:
                with self._lock:
                    short = len(self._ready) < self._reserve
                if not short:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                made = self._make()
                with self._lock:
                    self._ready.append(made)
        except OSError as err:
            # A full or read-only disk: executions make their own folders (and say why).
            _log.warning("making results folders ahead stopped: %s", err)

    def _adopt(self) -> None:
        """Keep the spares of an earlier start that hold only the layout's empty files."""
        for entry in os.scandir(self._dir):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False) and _pristine(path):
                with self._lock:
                    self._ready.append(path)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _make(self) -> Path:
        # Modes as the executors would have made them: the folder and the streams as
        # ``mkdir`` and ``open`` make them (under the umask), exitCode 0644.
        path = self._dir / secrets.token_hex(8)
        os.mkdir(path)
        for name in LAYOUT:
            mode = 0o644 if name == EXIT_CODE_FILE else 0o666
            os.close(os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        return path


def _pristine(path: Path) -> bool:
    """Whether ``path`` holds the layout's files, empty, and nothing else."""
    try:
        with os.scandir(path) as entries:
            found = {e.name: e for e in entries}
        return set(found) == set(LAYOUT) and all(
            e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_size == 0
            for e in found.values()
        )
    except OSError:
        return False
