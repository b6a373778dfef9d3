"""Content by CID for users outside the cluster (``bacalhau data``), served by a requester.

Users have no cluster certificate, so their data reaches the cluster through the requester's
REST API: ``data add`` uploads a CAR, which is imported into the requester's blockstore (each
block verified, the DAG checked complete, the root pinned); compute nodes then fetch it by
block exchange like any other content. ``data get`` and ``data ls`` read through the same
store, fetching from the cluster what the requester lacks (a job's published result).
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from bacalhau.errors import BlockNotFound, InvalidCID, InvalidContent, InvalidJobSpec, UnsafePath
from bacalhau.storage._exchange import BlockExchange
from bacalhau.storage._ipfs import parse_cid_path
from bacalhau.storage.cid import (
    CID,
    DAG_PB,
    MAX_DIR_DEPTH,
    Blockstore,
    EntryKind,
    LsEntry,
    check_entry_name,
    import_car,
    ls,
    read_file,
    resolve,
    stat,
    write_car,
)
from bacalhau.storage.cid._dagpb import decode_node, decode_unixfs

#: How long a download waits for content the requester must fetch from the cluster.
DEFAULT_GET_TIMEOUT = 60.0


class BlockstoreContent:
    """Uploads into, and downloads out of, ``store`` (``exchange`` fetches what is missing)."""

    def __init__(
        self,
        store: Blockstore,
        exchange: BlockExchange | None = None,
        *,
        fetch_timeout: float = DEFAULT_GET_TIMEOUT,
    ) -> None:
        self._store = store
        self._exchange = exchange
        self._timeout = fetch_timeout

    def add_car(self, stream: BinaryIO) -> list[str]:
        """Import a CAR (blocking): every block verified, every root's DAG complete, roots
        pinned; returns the roots. A CAR that lacks blocks pins nothing."""
        result = import_car(stream, self._store, pin_roots=False)
        if not result.roots:
            raise InvalidContent("the CAR names no root", hint="upload a CAR with one root")
        for root in result.roots:
            missing = self._first_missing(root)
            if missing is not None:
                raise InvalidContent(
                    f"the CAR lacks block {missing} of root {root}",
                    cid=str(missing),
                    hint="export the whole DAG (`ipfs dag export CID`)",
                )
        for root in result.roots:
            self._store.pin(root)
        return [str(r) for r in result.roots]

    def _first_missing(self, root: CID) -> CID | None:
        stack = [root]
        seen: set[CID] = set()
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if not self._store.has(cid):
                return cid
            if cid.codec == DAG_PB:
                stack.extend(link.cid for link in decode_node(self._store.get(cid)).links)
        return None

    async def ensure(self, text: str) -> None:
        """Make the DAG below ``text`` (a CID, or ``CID/path/inside``) present, from the
        cluster if need be; :class:`~bacalhau.errors.InvalidCID` when it names no CID."""
        cid = await self._resolve(text)
        if self._exchange is not None:
            await self._exchange.fetch_dag(cid, timeout=self._timeout)
        elif not self._store.has(cid):
            raise BlockNotFound(f"{cid} is not on this node", cid=str(cid))

    async def ensure_listing(self, text: str) -> None:
        """Make present what listing ``text`` takes (not its entries' content)."""
        cid = await self._resolve(text)
        await self._ensure_listing(cid)

    async def _ensure_listing(self, cid: CID) -> None:
        if self._exchange is not None:
            await self._exchange.fetch_listing(cid, timeout=self._timeout)
        elif not self._store.has(cid):
            raise BlockNotFound(f"{cid} is not on this node", cid=str(cid))

    async def _resolve(self, text: str) -> CID:
        """The CID ``text`` names: a path inside a directory is followed one folder at a
        time, each listing fetched from the cluster if need be."""
        root, path = _parse(text)
        current = root
        for part in path.split("/") if path else ():
            await self._ensure_listing(current)
            current = await asyncio.to_thread(self._step, text, current, part)
        return current

    def _step(self, text: str, current: CID, part: str) -> CID:
        try:
            return resolve(self._store, current, part)
        except (BlockNotFound, InvalidContent) as err:
            # Content that is here, with no such entry: the path is wrong, not the cluster.
            raise BlockNotFound(f"{text}: {err.message}", hint=_PATH_HINT) from None

    def write_car(self, text: str, out: BinaryIO) -> None:
        """Write the DAG as a CAR v1 (blocking)."""
        write_car(out, [self._resolve_here(text)], self._store)

    def check_tar(self, text: str) -> None:
        """Refuse content whose tar would put a member outside its root (blocking): an entry
        named ``..``, with a slash, or twice in one directory (a link and a folder of the
        same name would write through the link), or folders nested past
        :data:`MAX_DIR_DEPTH`. Compute nodes refuse such content when they export it; the
        check lets the API refuse it before a byte of the answer is sent."""
        for _ in self._members(self._resolve_here(text), content_name(text)):
            pass

    def write_tar(self, text: str, out: BinaryIO) -> None:
        """Write the content as an uncompressed tar stream (blocking): a file as one member
        named by its CID, a directory as a tree under a directory named by its CID (or,
        for a path inside a directory, by the path's last name, as ``ipfs get`` names it).
        Content :meth:`check_tar` refuses raises the same error part-way."""
        cid = self._resolve_here(text)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, entry in self._members(cid, content_name(text)):
                self._add(tar, entry, name)

    def _members(self, cid: CID, name: str) -> Iterator[tuple[str, LsEntry]]:
        """Every member of the tar, in its order (a folder before its entries, in name
        order), walked with a stack of its own: hostile content may nest deeper than
        Python recurses."""
        stack: list[tuple[str, LsEntry, int]] = [(name, stat(self._store, cid), 0)]
        while stack:
            path, entry, depth = stack.pop()
            yield path, entry
            if entry.kind != EntryKind.DIRECTORY:
                continue
            if depth >= MAX_DIR_DEPTH:
                raise InvalidContent(f"directories nested too deep at {path}", cid=str(cid))
            children = ls(self._store, entry.cid)
            seen: set[str] = set()
            for child in children:
                check_entry_name(os.fsencode(child.name), entry.cid)
                if child.name in seen:
                    raise UnsafePath(
                        f"entry {child.name!r} of {entry.cid} appears twice", cid=str(entry.cid)
                    )
                seen.add(child.name)
            stack.extend((f"{path}/{c.name}", c, depth + 1) for c in reversed(children))

    def _add(self, tar: tarfile.TarFile, entry: LsEntry, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.mtime = int(time.time())
        if entry.kind == EntryKind.DIRECTORY:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        elif entry.kind == EntryKind.FILE:
            info.size, info.mode = entry.size, 0o644
            tar.addfile(info, _ChunkReader(read_file(self._store, entry.cid)))
        else:  # symlinks: their target is the file's content
            target = b"".join(_symlink_target(self._store, entry.cid))
            info.type, info.linkname = tarfile.SYMTYPE, os.fsdecode(target)
            tar.addfile(info)

    def ls(self, text: str) -> list[dict[str, Any]]:
        """The entries of a directory (or the one file) as JSON-ready objects (blocking)."""
        cid = self._resolve_here(text)
        entry = stat(self._store, cid)
        entries = ls(self._store, cid) if entry.kind == EntryKind.DIRECTORY else [entry]
        return [
            {"Name": e.name, "CID": str(e.cid), "Type": e.kind.value, "Size": e.size}
            for e in entries
        ]

    def _resolve_here(self, text: str) -> CID:
        """:meth:`_resolve` once the blocks are here (blocking)."""
        root, path = _parse(text)
        return resolve(self._store, root, path) if path else root


_PATH_HINT = "list the directory with `bacalhau data ls CID` to see its entries"


def _parse(text: str) -> tuple[CID, str]:
    try:
        return parse_cid_path(text, field="cid")
    except InvalidJobSpec as err:  # an empty CID, or "." or ".." in the path
        raise InvalidCID(err.message, field="cid") from None


def content_name(text: str) -> str:
    """The name content ``text`` is written under: its CID, or the last name of a path
    inside a directory."""
    root, path = _parse(text)
    return path.rsplit("/", 1)[-1] if path else str(root)


def _symlink_target(store: Blockstore, cid: CID) -> list[bytes]:
    return [decode_unixfs(decode_node(store.get(cid)).data).data or b""]


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of chunks (what tarfile reads a member from)."""

    def __init__(self, chunks: Any) -> None:
        self._next: Callable[[], bytes] = iter(chunks).__next__
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = self._next()
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n
