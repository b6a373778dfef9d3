"""Recording the file system changes code makes under a folder, through audit hooks.

The interpreter raises an audit event before every ``mkdir``, ``rmdir``, ``rename``/``replace``,
``remove`` and ``open`` (builtin, ``io``, ``os.open``); a hook sees them in every thread, so a
test can tell which folders and files code under test created or removed without replacing
any of it. Hooks cannot be removed: one is installed per process, on first use, and records
only while a :func:`record_fs_calls` block is active.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["record_fs_calls"]

#: Audit events of interest, by the name they are recorded under.
_EVENTS = {
    "os.mkdir": "mkdir",
    "os.rmdir": "rmdir",
    "os.rename": "rename",
    "os.remove": "remove",
    "shutil.rmtree": "rmtree",
}
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT

_lock = threading.Lock()
_watches: list[tuple[str, list[tuple[str, str]]]] = []
_installed = False


def _hook(event: str, args: tuple[object, ...]) -> None:
    if not _watches or not args:
        return
    if event == "open":
        flags = args[2] if len(args) > 2 else 0
        if not isinstance(flags, int) or not flags & _WRITING:
            return  # opened to be read: nothing changes
        kind = "open-write"
    else:
        kind = _EVENTS.get(event, "")
        if not kind:
            return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        return  # a file descriptor
    full = os.path.abspath(os.fspath(path))
    with _lock:
        for root, calls in _watches:
            if full.startswith(root):
                calls.append((kind, full[len(root) :]))


@contextmanager
def record_fs_calls(root: Path) -> Iterator[list[tuple[str, str]]]:
    """``(call, path relative to root)`` for every ``mkdir``, ``rmdir``, ``rename`` (by its
    source), ``remove``, ``rmtree`` and open for writing under ``root`` while the block runs,
    in order (failed calls included: the event comes before the call)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    watch: tuple[str, list[tuple[str, str]]] = (os.path.abspath(root) + os.sep, [])
    with _lock:
        _watches.append(watch)
    try:
        yield watch[1]
    finally:
        with _lock:
            _watches.remove(watch)
