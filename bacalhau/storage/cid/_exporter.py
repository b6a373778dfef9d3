"""UnixFS exporter: CID -> file content, directory listings and files on disk.

Writing to disk goes through directory file descriptors (``openat``/``mkdirat``/
``symlinkat``): every entry is created fresh (``O_EXCL``, ``O_NOFOLLOW``) inside the
descriptor of its parent, so no name, duplicate or symlink in the DAG can place anything
outside the target directory. Symlinks are recreated as symlinks and never followed.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from bacalhau.errors import BlockNotFound, InvalidContent, UnsafePath

from ._cid import CID, DAG_PB, RAW
from ._dagpb import DataType, PBLink, PBNode, UnixFSData, decode_node, decode_unixfs
from ._hamt import PREFIX_LEN

__all__ = [
    "MAX_DIR_DEPTH",
    "BlockSource",
    "EntryKind",
    "LsEntry",
    "check_entry_name",
    "export",
    "ls",
    "read_file",
    "resolve",
    "stat",
]

#: Deeper than any balanced file DAG can be (174**16 chunks); refuses cycles and bombs.
_MAX_FILE_DEPTH: Final = 16
#: Deepest directory nesting exported (a result tree is refused past 400 levels before it
#: is published; content added by hand may be deeper, and is refused here).
MAX_DIR_DEPTH: Final = 512
_NO_FOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)


class BlockSource(Protocol):
    """Where the exporter reads blocks from; ``get`` returns verified bytes."""

    def get(self, cid: CID) -> bytes: ...


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class LsEntry:
    """One entry of a directory: ``size`` is a file's length in bytes (0 for the rest),
    ``tsize`` the cumulative size of its DAG as recorded in the link."""

    name: str
    cid: CID
    kind: EntryKind
    size: int
    tsize: int


@dataclass(frozen=True, slots=True)
class _Node:
    cid: CID
    raw: bytes | None  # the block of a raw leaf
    pb: PBNode | None
    unixfs: UnixFSData | None

    @property
    def kind(self) -> EntryKind:
        if self.unixfs is None or self.unixfs.type in (DataType.FILE, DataType.RAW):
            return EntryKind.FILE
        if self.unixfs.type in (DataType.DIRECTORY, DataType.HAMT_SHARD):
            return EntryKind.DIRECTORY
        if self.unixfs.type == DataType.SYMLINK:
            return EntryKind.SYMLINK
        raise InvalidContent(f"unsupported UnixFS node {self.unixfs.type.name}", cid=str(self.cid))

    @property
    def filesize(self) -> int:
        if self.raw is not None:
            return len(self.raw)
        assert self.unixfs is not None
        if self.unixfs.filesize is not None:
            return self.unixfs.filesize
        return len(self.unixfs.data or b"")


def _load(source: BlockSource, cid: CID) -> _Node:
    block = source.get(cid)
    if cid.codec == RAW:
        return _Node(cid, block, None, None)
    if cid.codec != DAG_PB:
        raise InvalidContent(f"{cid} is neither dag-pb nor raw: not UnixFS", cid=str(cid))
    try:
        pb = decode_node(block)
        return _Node(cid, None, pb, decode_unixfs(pb.data))
    except InvalidContent as exc:
        raise InvalidContent(f"{cid}: {exc.message}", cid=str(cid)) from None


def _entries(source: BlockSource, node: _Node, depth: int = 0) -> Iterator[PBLink]:
    """The entries of a flat or HAMT directory, links named by the entries' own names."""
    assert node.pb is not None and node.unixfs is not None
    if node.unixfs.type == DataType.DIRECTORY:
        yield from node.pb.links
        return
    if node.unixfs.type != DataType.HAMT_SHARD:
        raise InvalidContent(f"{node.cid} is not a directory", cid=str(node.cid))
    if depth > 8:
        raise InvalidContent(f"HAMT deeper than its hash at {node.cid}", cid=str(node.cid))
    for link in node.pb.links:
        if len(link.name) < PREFIX_LEN:
            raise InvalidContent(f"bad HAMT link name in {node.cid}", cid=str(node.cid))
        if len(link.name) == PREFIX_LEN:
            yield from _entries(source, _load(source, link.cid), depth + 1)
        else:
            yield PBLink(link.cid, link.name[PREFIX_LEN:], link.tsize)


def check_entry_name(name: bytes, parent: CID) -> None:
    """Raise :class:`UnsafePath` for a directory entry name that is not one plain path
    component (empty, ``.``, ``..``, a slash or a NUL): written as it is, it would land
    outside its directory."""
    if not name or name in (b".", b"..") or b"/" in name or b"\x00" in name:
        raise UnsafePath(
            f"entry name {name!r} in {parent} would escape its directory", cid=str(parent)
        )


def stat(source: BlockSource, cid: CID) -> LsEntry:
    """What ``cid`` is: kind and (for a file) size. The name is empty."""
    node = _load(source, cid)
    kind = node.kind
    return LsEntry("", cid, kind, node.filesize if kind == EntryKind.FILE else 0, 0)


def ls(source: BlockSource, cid: CID) -> list[LsEntry]:
    """The entries of directory ``cid`` (flat or sharded), in name order, each resolved to
    its kind and size (one block read per entry)."""
    node = _load(source, cid)
    out: list[LsEntry] = []
    for link in sorted(_entries(source, node), key=lambda link: link.name):
        child = _load(source, link.cid)
        kind = child.kind
        size = child.filesize if kind == EntryKind.FILE else 0
        out.append(LsEntry(os.fsdecode(link.name), link.cid, kind, size, link.tsize))
    return out


def resolve(source: BlockSource, cid: CID, path: str) -> CID:
    """The CID of ``path`` (``a/b/c``) inside directory ``cid``."""
    current = cid
    for part in (p for p in path.split("/") if p):
        name = os.fsencode(part)
        node = _load(source, current)
        if node.kind != EntryKind.DIRECTORY:
            raise InvalidContent(f"{current} is not a directory: cannot resolve {path!r}")
        match = next((link for link in _entries(source, node) if link.name == name), None)
        if match is None:
            raise BlockNotFound(f"no entry {part!r} in {current} (resolving {path!r})")
        current = match.cid
    return current


def read_file(source: BlockSource, cid: CID) -> Iterator[bytes]:
    """Stream a file's content, block by block (memory: one block per DAG level)."""
    node = _load(source, cid)
    if node.kind != EntryKind.FILE:
        raise InvalidContent(f"{cid} is a {node.kind}, not a file", cid=str(cid))
    total = 0
    for chunk in _file_chunks(source, node, 0):
        total += len(chunk)
        yield chunk
    if total != node.filesize:
        raise InvalidContent(
            f"file {cid} holds {total} bytes but declares {node.filesize}", cid=str(cid)
        )


def _file_chunks(source: BlockSource, node: _Node, depth: int) -> Iterator[bytes]:
    if node.raw is not None:
        yield node.raw
        return
    assert node.pb is not None and node.unixfs is not None
    if node.unixfs.type not in (DataType.FILE, DataType.RAW):
        raise InvalidContent(f"{node.cid} inside a file is not file data", cid=str(node.cid))
    if depth > _MAX_FILE_DEPTH:
        raise InvalidContent(f"file DAG too deep at {node.cid}", cid=str(node.cid))
    if node.unixfs.data:
        yield node.unixfs.data
    for link in node.pb.links:
        yield from _file_chunks(source, _load(source, link.cid), depth + 1)


def export(source: BlockSource, cid: CID, dest: str | os.PathLike[str]) -> None:
    """Write ``cid`` at ``dest``: a file, a symlink, or a directory tree.

    ``dest`` must not exist, except that a directory may be exported into an existing
    empty directory. Nothing is written outside ``dest``: names with ``/`` or ``..``,
    duplicates and paths through symlinks raise :class:`UnsafePath`.
    """
    target = Path(dest)
    parent_fd = os.open(target.parent, os.O_RDONLY | _DIRECTORY)
    try:
        name = os.fsencode(target.name)
        node = _load(source, cid)
        if node.kind == EntryKind.DIRECTORY and target.is_dir() and not target.is_symlink():
            if any(target.iterdir()):
                raise UnsafePath(f"{target} exists and is not empty", cid=str(cid))
            dir_fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NO_FOLLOW, dir_fd=parent_fd)
            try:
                _write_entries(source, node, dir_fd, 0)
            finally:
                os.close(dir_fd)
            return
        _write(source, node, parent_fd, name, 0)
    finally:
        os.close(parent_fd)


def _write(source: BlockSource, node: _Node, dir_fd: int, name: bytes, depth: int) -> None:
    kind = node.kind
    try:
        if kind == EntryKind.SYMLINK:
            assert node.unixfs is not None
            os.symlink(node.unixfs.data or b"", name, dir_fd=dir_fd)
        elif kind == EntryKind.DIRECTORY:
            if depth > MAX_DIR_DEPTH:
                raise InvalidContent(f"directories nested too deep at {node.cid}")
            os.mkdir(name, 0o755, dir_fd=dir_fd)
            sub_fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NO_FOLLOW, dir_fd=dir_fd)
            try:
                _write_entries(source, node, sub_fd, depth + 1)
            finally:
                os.close(sub_fd)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as out:
                for chunk in read_file(source, node.cid):
                    out.write(chunk)
    except FileExistsError:
        raise UnsafePath(
            f"entry {os.fsdecode(name)!r} of {node.cid} already exists", cid=str(node.cid)
        ) from None


def _write_entries(source: BlockSource, node: _Node, dir_fd: int, depth: int) -> None:
    for link in _entries(source, node):
        check_entry_name(link.name, node.cid)
        _write(source, _load(source, link.cid), dir_fd, link.name, depth)
