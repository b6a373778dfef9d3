"""Recording the file system changes code makes under a folder (see ``tests.storage.opens``
for how the interpreter's audit hooks report them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.storage.opens import watch_paths

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


@contextmanager
def record_fs_calls(root: Path) -> Iterator[list[tuple[str, str]]]:
    """``(call, path relative to root)`` for every ``mkdir``, ``rmdir``, ``rename`` (by its
    source), ``remove``, ``rmtree`` and open for writing under ``root`` while the block runs,
    in order (failed calls included: the event comes before the call)."""
    calls: list[tuple[str, str]] = []

    def changed(event: str, args: tuple[object, ...], path: str) -> None:
        if event == "open":
            flags = args[2] if len(args) > 2 else 0
            if isinstance(flags, int) and flags & _WRITING:
                calls.append(("open-write", path))
        elif event in _EVENTS:
            calls.append((_EVENTS[event], path))

    with watch_paths(root, changed):
        yield calls
