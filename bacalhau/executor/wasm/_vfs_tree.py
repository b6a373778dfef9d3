"""The virtual file system's view of the host directories: where a path leads, and the
metadata a module is shown in place of the host's.

A *root* is a host directory given to the run (an input, a result folder). A path inside it is
resolved here, component by component, with symbolic links followed by us rather than by the
host, so that nothing (``..``, an absolute link, a relative link that climbs too far) leads
outside the directory descriptor the module started from.

What the host would tell differently on every node is replaced by :class:`Meta`:

- **inode numbers**: an entry that existed before the run gets a hash of its root's name and
  its path inside the root (the same on every node); one the run creates gets the next number
  of a counter with the top bit set (creation order is the module's own, so the same on every
  node); a renamed entry keeps its number;
- **times**: entries that existed before the run carry :data:`FIXED_TIME_NS`; what the run
  creates or changes carries the run's virtual clock at that moment. Reads do not change the
  access time (as on a ``noatime`` mount).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bacalhau.executor._walk import walk
from bacalhau.executor.wasm._output_times import FIXED_TIME_NS
from bacalhau.executor.wasm._wasi_abi import (
    ERRNO_LOOP,
    ERRNO_NOENT,
    ERRNO_NOTCAPABLE,
    ERRNO_NOTDIR,
    ERRNO_ROFS,
    FILETYPE_DIRECTORY,
    FILETYPE_REGULAR_FILE,
    FILETYPE_SYMBOLIC_LINK,
    FILETYPE_UNKNOWN,
    WasiError,
)

__all__ = ["FIXED_TIME_NS", "Meta", "MetaTable", "Resolved", "Root", "filetype", "resolve"]

#: How many symbolic links one lookup may follow (Linux's limit).
_MAX_LINKS = 40
_CREATED_INO = 1 << 63
_HASHED_INO_MASK = _CREATED_INO - 1

RelPath = tuple[str, ...]


@dataclass(frozen=True)
class Root:
    """A host directory shown to the module; ``dev`` is the device number it reports."""

    host: Path
    writable: bool
    name: str
    dev: int

    def host_path(self, rel: RelPath) -> str:
        return os.path.join(self.host, *rel) if rel else str(self.host)

    def check_writable(self) -> None:
        if not self.writable:
            raise WasiError(ERRNO_ROFS)


@dataclass
class Meta:
    """What the module is told of an entry in place of the host's inode and times."""

    ino: int
    atime: int
    mtime: int
    ctime: int

    def touch(self, now: int) -> None:
        """The contents changed (a write, a truncation, an entry added or removed)."""
        self.mtime = self.ctime = now


@dataclass(frozen=True)
class Resolved:
    """Where a path leads: the entry ``rel`` of ``root``; ``dir_only`` when the path ended in
    a slash (so it must name a directory)."""

    root: Root
    rel: RelPath
    dir_only: bool

    @property
    def host(self) -> str:
        return self.root.host_path(self.rel)


class MetaTable:
    """The metadata of every entry the run has created, changed or renamed, by root and path.

    Entries of read-only roots are never stored: their metadata follows from their path.
    """

    def __init__(self, now: Callable[[], int]) -> None:
        self._now = now
        self._entries: dict[tuple[Path, RelPath], Meta] = {}
        self._created = 0

    def now(self) -> int:
        return self._now()

    def get(self, root: Root, rel: RelPath) -> Meta:
        """The entry's metadata, remembered from now on if its root is writable (so that
        changes stick)."""
        meta = self._entries.get((root.host, rel))
        if meta is None:
            meta = Meta(_hashed_ino(root.name, rel), FIXED_TIME_NS, FIXED_TIME_NS, FIXED_TIME_NS)
            if root.writable:
                self._entries[(root.host, rel)] = meta
        return meta

    def created(self, root: Root, rel: RelPath) -> Meta:
        """A new entry: the next created inode number, every time now; its directory changed."""
        self._created += 1
        now = self._now()
        meta = Meta(_CREATED_INO | self._created, now, now, now)
        self._entries[(root.host, rel)] = meta
        self.touch(root, rel[:-1])
        return meta

    def touch(self, root: Root, rel: RelPath) -> None:
        self.get(root, rel).touch(self._now())

    def removed(self, root: Root, rel: RelPath) -> None:
        """The entry was unlinked or, empty, removed (what it held went before it)."""
        self._entries.pop((root.host, rel), None)
        self.touch(root, rel[:-1])

    def moved(self, root: Root, old: RelPath, new: RelPath) -> None:
        """``old`` was renamed to ``new``: it and everything under it keep their metadata."""
        meta = self.get(root, old)
        if os.path.isdir(root.host_path(new)):
            # Entries under a renamed directory that were never looked at still have the
            # numbers of their old paths: remember those before the paths change. (Scanning
            # the table is linear, but only directory renames pay it.)
            for sub in _walk(root.host_path(new)):
                self.get(root, old + sub)
            moving = {key: self._entries.pop(key) for key in list(self._under(root, old))}
            for key in list(self._under(root, new)):
                del self._entries[key]  # what the rename replaced (an empty directory)
            for (_, rel), moved in moving.items():
                self._entries[(root.host, new + rel[len(old) :])] = moved
        else:
            self._entries.pop((root.host, old), None)
            self._entries[(root.host, new)] = meta
        meta.ctime = self._now()
        self.touch(root, old[:-1])
        self.touch(root, new[:-1])

    def _under(self, root: Root, rel: RelPath) -> Iterator[tuple[Path, RelPath]]:
        n = len(rel)
        for key in self._entries:
            if key[0] == root.host and key[1][:n] == rel:
                yield key


def filetype(mode: int) -> int:
    """The WASI file type of a host ``st_mode``."""
    if stat.S_ISREG(mode):
        return FILETYPE_REGULAR_FILE
    if stat.S_ISDIR(mode):
        return FILETYPE_DIRECTORY
    if stat.S_ISLNK(mode):
        return FILETYPE_SYMBOLIC_LINK
    return FILETYPE_UNKNOWN


def resolve(root: Root, base: RelPath, path: str, *, follow: bool) -> Resolved:
    """Resolve ``path`` relative to the directory ``base`` of ``root``.

    Symbolic links in the path are followed here (the last one only when ``follow``); neither
    ``..`` nor a link may lead above ``base`` (ENOTCAPABLE), nor may a link be absolute. A
    missing or non-directory component before the end is ENOENT or ENOTDIR.
    """
    if not path:
        raise WasiError(ERRNO_NOENT)
    if path.startswith("/"):
        raise WasiError(ERRNO_NOTCAPABLE)
    parts = path.split("/")
    dir_only = parts[-1] in ("", ".", "..")
    stack: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if not stack:
                raise WasiError(ERRNO_NOTCAPABLE)
            stack.pop()
            continue
        stack.append(name)
        last = all(p in ("", ".") for p in parts)
        if last and not follow and not dir_only:
            break
        host = root.host_path((*base, *stack))
        try:
            mode = os.lstat(host).st_mode
        except FileNotFoundError:
            if last:
                break
            raise WasiError(ERRNO_NOENT) from None
        except NotADirectoryError:
            raise WasiError(ERRNO_NOTDIR) from None
        if stat.S_ISLNK(mode):
            links += 1
            if links > _MAX_LINKS:
                raise WasiError(ERRNO_LOOP)
            target = os.readlink(host)
            if target.startswith("/"):
                raise WasiError(ERRNO_NOTCAPABLE)
            stack.pop()
            parts[:0] = target.split("/")
            if target.endswith("/"):
                dir_only = dir_only or last
        elif not last and not stat.S_ISDIR(mode):
            raise WasiError(ERRNO_NOTDIR)
    return Resolved(root, (*base, *stack), dir_only)


def _hashed_ino(root_name: str, rel: RelPath) -> int:
    digest = hashlib.blake2b("/".join((root_name, *rel)).encode(errors="surrogateescape"))
    return int.from_bytes(digest.digest()[:8], "little") & _HASHED_INO_MASK


def _walk(top: str) -> Iterator[RelPath]:
    """Every entry under ``top`` (not following links), as paths relative to it."""
    for dirpath, dirnames, filenames in walk(top):
        prefix = os.path.relpath(dirpath, top)
        base: RelPath = () if prefix == "." else tuple(prefix.split(os.sep))
        for name in (*dirnames, *filenames):
            yield (*base, name)
