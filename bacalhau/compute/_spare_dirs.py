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

A new folder is the costly part (ext4 looks for a block group to place it in: 0.5 to 1 ms
of kernel time, measured under load), so a finished execution whose folder holds nothing but
its logs, kept elsewhere, gives it back (:meth:`SpareDirs.give_back`): renamed here at once,
its written files cut to zero in place later, by the thread (see :func:`_cut`).
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

__all__ = ["LAYOUT", "SpareDirs", "layout_entries"]

_log = logging.getLogger(__name__)

#: What a spare folder holds: the files every results layout has, empty.
LAYOUT = (STDOUT_FILE, STDERR_FILE, EXIT_CODE_FILE)
#: Folders kept ready: enough for the executions a node starts in one burst of asks.
DEFAULT_RESERVE = 8
#: Most folders kept ready with those given back (beyond, given-back ones are removed).
READY_LIMIT = 64
#: How the name of a folder given back and not emptied yet starts.
_USED = "used-"


class SpareDirs:
    """Empty results folders under ``<root>/.spare``, made by a daemon thread started at the
    first :meth:`take` and woken by :meth:`replenish`; :meth:`close` stops it."""

    def __init__(self, root: Path, *, reserve: int = DEFAULT_RESERVE) -> None:
        self._dir = root / ".spare"
        self._reserve = reserve
        self._ready: collections.deque[Path] = collections.deque()
        #: Folders given back, to be emptied by the thread.
        self._used: collections.deque[Path] = collections.deque()
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

    def give_back(self, folder: Path) -> bool:
        """Take back a finished execution's folder that holds only the layout's files, its
        logs kept elsewhere: renamed out of the way at once, emptied later by the thread for
        another execution. False (``folder`` left as it is) when it cannot be renamed."""
        if self._thread is None or self._closed:
            return False
        used = self._dir / f"{_USED}{secrets.token_hex(8)}"
        try:
            os.rename(folder, used)
        except OSError:
            return False  # the thread has not made ``.spare`` yet, or a full disk
        with self._lock:
            self._used.append(used)
        self._wake.set()
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
            # Here, not only in the thread: an execution may end before the thread has run
            # at all (the event loop's thread keeps the GIL), and its folder is given back
            # into this one. (If it cannot be made, the thread says why.)
            with contextlib.suppress(OSError):
                self._dir.mkdir(parents=True, exist_ok=True)
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
                    used = self._used.popleft() if self._used else None
                    short = len(self._ready) < self._reserve
                    full = len(self._ready) >= READY_LIMIT
                if used is not None:
                    made = None if full else _emptied(used)
                    if made is None:
                        shutil.rmtree(used, ignore_errors=True)
                        continue
                elif short:
                    made = self._make()
                else:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                with self._lock:
                    self._ready.append(made)
        except OSError as err:
            # A full or read-only disk: executions make their own folders (and say why).
            _log.warning("making results folders ahead stopped: %s", err)

    def _adopt(self) -> None:
        """Keep the spares of an earlier start that hold only the layout's empty files, and
        those given back."""
        for entry in os.scandir(self._dir):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False) and entry.name.startswith(_USED):
                with self._lock:
                    # Given back before the stop (or just now, already listed): emptied once.
                    if path not in self._used:
                        self._used.append(path)
            elif entry.is_dir(follow_symlinks=False) and _pristine(path):
                with self._lock:
                    self._ready.append(path)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _make(self) -> Path:
        path = self._dir / secrets.token_hex(8)
        os.mkdir(path)
        for name in LAYOUT:
            _new_file(path / name)
        return path


def layout_entries(folder: Path) -> dict[str, os.DirEntry[str]] | None:
    """The entries of ``folder`` by name when it holds regular files of the layout's names
    and nothing else (not necessarily all of them); None otherwise. Raises OSError (the
    folder cannot be listed)."""
    with os.scandir(folder) as entries:
        found = {e.name: e for e in entries}
    if not set(found) <= set(LAYOUT):
        return None
    if not all(e.is_file(follow_symlinks=False) for e in found.values()):
        return None
    return found


def _new_file(path: Path) -> None:
    # Modes as the executors would have made them: the streams as ``open`` makes them
    # (under the umask), exitCode 0644.
    mode = 0o644 if path.name == EXIT_CODE_FILE else 0o666
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _emptied(folder: Path) -> Path | None:
    """``folder`` (given back) holding the layout's files empty again; None when it holds
    anything else (it is then removed)."""
    try:
        found = layout_entries(folder)
        if found is None:
            return None
        for name in LAYOUT:
            entry = found.get(name)
            if entry is None:
                _new_file(folder / name)
            elif entry.stat(follow_symlinks=False).st_size:
                _cut(folder / name)
        return folder
    except OSError:
        return None


def _cut(path: Path) -> None:
    """Empty a file through a descriptor of its own: the close after the cut clears what
    ext4 marks a file cut to zero with (its next writer's close would flush that writer's
    data), with nothing to flush yet. Half the kernel time of a new file in its place."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _pristine(path: Path) -> bool:
    """Whether ``path`` holds the layout's files, empty, and nothing else."""
    try:
        found = layout_entries(path)
        return (
            found is not None
            and len(found) == len(LAYOUT)
            and all(e.stat(follow_symlinks=False).st_size == 0 for e in found.values())
        )
    except OSError:
        return False
