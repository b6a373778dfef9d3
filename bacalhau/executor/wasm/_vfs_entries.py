"""The virtual file system's descriptors and records: what ``_vfs`` keeps per open fd."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bacalhau.executor.wasm._vfs_tree import Meta, MetaTable, RelPath, Root

__all__ = ["Entry", "FileStat", "OpenDir", "OpenFile", "Preopen", "Stream"]


@dataclass(frozen=True)
class Preopen:
    """A host directory given to the run under the name ``guest`` (``/inputs``)."""

    host: Path
    guest: str
    writable: bool


@dataclass(frozen=True)
class FileStat:
    """A ``filestat`` as the module sees it."""

    dev: int
    ino: int
    filetype: int
    nlink: int
    size: int
    atime: int
    mtime: int
    ctime: int


@dataclass
class Stream:
    """fd 0, 1 or 2: ``host_fd`` is where writes go (None: nowhere; reads see end of file)."""

    host_fd: int | None
    rights: int
    fdflags: int = 0


@dataclass
class OpenDir:
    """A directory descriptor (a preopen when ``preopen`` names it)."""

    root: Root
    rel: RelPath
    rights: int
    inheriting: int
    preopen: str | None = None
    fdflags: int = 0
    #: The listing ``fd_readdir`` serves, taken when it is read from cookie 0.
    listing: list[str] = field(default_factory=list)

    def meta_for(self, table: MetaTable) -> Meta:
        # Looked up by path each time: a directory has no host descriptor to hold it by.
        return table.get(self.root, self.rel)


@dataclass
class OpenFile:
    """A regular file (or anything not a directory) open on the host."""

    root: Root
    meta: Meta
    host_fd: int
    rights: int
    inheriting: int
    fdflags: int


Entry = Stream | OpenDir | OpenFile
