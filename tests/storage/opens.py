"""Counting how often files are opened, through the interpreter's audit hooks.

Every ``open`` (builtin, ``io``, ``os.open``) raises the ``open`` audit event; a hook sees it
in every thread, so a test can tell how many times code under test opened each file without
replacing any of it. Hooks cannot be removed: one is installed per process, on first use,
and records only while a :func:`count_opens` block is active.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()
_watches: list[tuple[str, Counter[str]]] = []
_installed = False


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not _watches or not args:
        return
    path = args[0]
    if isinstance(path, int):
        return  # opening a file descriptor: the file was opened already
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        return
    full = os.path.abspath(os.fspath(path))
    with _lock:
        for root, counts in _watches:
            if full.startswith(root):
                counts[full[len(root) :]] += 1


@contextmanager
def count_opens(root: Path) -> Iterator[Counter[str]]:
    """Counts of opens of files under ``root`` while the block runs, keyed by path relative
    to ``root`` (``/``-separated)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    watch = (os.path.abspath(root) + os.sep, Counter[str]())
    with _lock:
        _watches.append(watch)
    try:
        yield watch[1]
    finally:
        with _lock:
            _watches.remove(watch)
