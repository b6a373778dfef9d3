"""Watching what code does to files under a folder, through the interpreter's audit hooks.

The interpreter raises an audit event before every ``open`` (builtin, ``io``, ``os.open``),
``mkdir``, ``rmdir``, ``rename``/``replace`` and ``remove``; a hook sees them in every thread,
so a test can tell what code under test opened, created or removed without replacing any of
it. Hooks cannot be removed: one is installed per process, on first use, and reports only
to the :func:`watch_paths` blocks active (:func:`count_opens` is one).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Called with (audit event, its arguments, the path relative to the watched folder).
Watcher = Callable[[str, tuple[object, ...], str], None]

_lock = threading.Lock()
_watches: list[tuple[str, Watcher]] = []
_installed = False


def _hook(event: str, args: tuple[object, ...]) -> None:
    if not _watches or not args:
        return
    path = args[0]
    if isinstance(path, int):
        return  # a file descriptor: the file was opened already
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        return
    full = os.path.abspath(os.fspath(path))
    with _lock:
        for root, watcher in _watches:
            if full.startswith(root):
                watcher(event, args, full[len(root) :])


@contextmanager
def watch_paths(root: Path, watcher: Watcher) -> Iterator[None]:
    """Report every audit event about a path under ``root`` to ``watcher`` while the block
    runs (failed calls included: the event comes before the call)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    watch = (os.path.abspath(root) + os.sep, watcher)
    with _lock:
        _watches.append(watch)
    try:
        yield
    finally:
        with _lock:
            _watches.remove(watch)


@contextmanager
def count_opens(root: Path) -> Iterator[Counter[str]]:
    """Counts of opens of files under ``root`` while the block runs, keyed by path relative
    to ``root`` (``/``-separated)."""
    counts: Counter[str] = Counter()

    def opened(event: str, args: tuple[object, ...], path: str) -> None:
        if event == "open":
            counts[path] += 1

    with watch_paths(root, opened):
        yield counts
