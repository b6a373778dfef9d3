"""Walking a job's result tree without recursion.

A job decides how deep its outputs go; ``os.walk`` recurses (on Python 3.11) and a tree a
thousand folders deep ends it in ``RecursionError``. These walks keep their own stack, and
:func:`deepest` tells how deep a tree goes so that publishing (whose CID importer does
recurse) can refuse a tree past :data:`MAX_RESULT_DEPTH` with a clear error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

__all__ = ["MAX_RESULT_DEPTH", "deepest", "depth_of", "walk"]

#: Folders below a result folder at most (the publishers' importer recurses about twice per
#: level; Python's limit is 1000 frames).
MAX_RESULT_DEPTH = 400
#: Folders of a tree :func:`depth_of` walks where it is called (a few ``scandir`` calls,
#: cheaper than a thread's round trip); a larger tree is walked in a thread.
INLINE_FOLDERS = 16


def walk(root: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` top-down, links never followed, with a stack of its own."""
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(entry.name)
        except OSError:
            continue
        yield top, dirs, files
        # Reversed: the first folder is walked next, as os.walk would.
        stack.extend(os.path.join(top, d) for d in reversed(dirs))


def deepest(root: str | os.PathLike[str], *, stop_at: int = MAX_RESULT_DEPTH + 1) -> int:
    """How many folders deep ``root``'s tree goes (0: no sub-folder); counting stops at
    ``stop_at``."""
    depth = _deepest(root, stop_at, None)
    assert depth is not None  # no folder limit
    return depth


async def depth_of(root: str | os.PathLike[str], *, stop_at: int = MAX_RESULT_DEPTH + 1) -> int:
    """:func:`deepest`, from the event loop: a tree of up to :data:`INLINE_FOLDERS` folders
    (a job's usual results) is walked at once, a larger one in a thread."""
    depth = _deepest(root, stop_at, INLINE_FOLDERS)
    if depth is None:
        return await asyncio.to_thread(deepest, root, stop_at=stop_at)
    return depth


def _deepest(root: str | os.PathLike[str], stop_at: int, max_folders: int | None) -> int | None:
    """:func:`deepest`; None once more than ``max_folders`` folders were seen."""
    base = os.fspath(root).rstrip(os.sep).count(os.sep)
    most = 0
    for seen, (top, _, _) in enumerate(walk(root)):
        if max_folders is not None and seen >= max_folders:
            return None
        most = max(most, top.count(os.sep) - base)
        if most >= stop_at:
            break
    return most
