"""Blocks on disk, verified on every read, with recursive pins and garbage collection.

Layout under the store's directory::

    blocks/<2 hex>/<hex of the multihash>   one file per block
    pins/<CID>                              one empty file per recursive pin
    tmp/                                    blocks being written

Why one file per block rather than SQLite: blocks are mostly 256 KiB chunks, which files
hold without overhead; a write is atomic with a rename and needs no lock shared between
processes (importers, the exchange and the GC can run side by side); a read streams from
the page cache; and an operator can inspect or back up the store with ordinary tools. The
cost, one inode per block, is small at 256 KiB a block. Blocks are keyed by multihash (as
Kubo's flatfs does), so the same bytes under a CIDv0 and a CIDv1 are stored once; 256 fan-out
directories keep each directory small up to millions of blocks.

Writes are atomic (temporary file + rename) but not fsynced: a crash may lose the last
blocks, never leave a torn one under its name, and a torn block would be refused on read
anyway because every read is verified.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import BlockNotFound, InvalidCID

from ._cid import CID, DAG_PB, IDENTITY
from ._dagpb import decode_node

__all__ = ["BatchWriter", "Blockstore", "BlockstoreStats", "GCResult"]


@dataclass(frozen=True, slots=True)
class BlockstoreStats:
    blocks: int
    bytes: int
    pins: int


@dataclass(frozen=True, slots=True)
class GCResult:
    removed_blocks: int
    removed_bytes: int
    kept_blocks: int


class Blockstore:
    """A CID-addressed block store in a directory (created if missing).

    ``get`` verifies every block against its CID and raises
    :class:`~bacalhau.errors.CorruptBlock` instead of returning damaged bytes. Thread-safe;
    several processes may share one directory (garbage collection excepted: run one at a
    time).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        for directory in (self._blocks, self._pins, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._fan_dirs: set[str] = set()
        self._gc_lock = threading.Lock()

    # -- paths --------------------------------------------------------------------------

    def _path(self, cid: CID) -> Path:
        key = cid.multihash.hex()
        fan = key[-3:-1]  # next-to-last characters: the digest's, not the fixed prefix
        return self._blocks / fan / key

    def _ensure_fan(self, path: Path) -> None:
        fan = path.parent.name
        if fan not in self._fan_dirs:
            path.parent.mkdir(exist_ok=True)
            self._fan_dirs.add(fan)

    # -- blocks -------------------------------------------------------------------------

    def has(self, cid: CID) -> bool:
        """Whether the block is stored (not verified; ``get`` verifies)."""
        return cid.hash_code == IDENTITY or self._path(cid).is_file()

    def get(self, cid: CID) -> bytes:
        """The block's bytes, verified against ``cid``.

        Raises :class:`BlockNotFound` when it is absent and :class:`CorruptBlock` when its
        bytes do not match.
        """
        if cid.hash_code == IDENTITY:
            return cid.digest
        try:
            data = self._path(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(f"block {cid} is not in the store", cid=str(cid)) from None
        cid.verify(data)
        return data

    def put(self, cid: CID, data: bytes) -> None:
        """Store a block after checking it hashes to ``cid`` (:class:`CorruptBlock` if not)."""
        cid.verify(data)
        self.put_trusted(cid, data)

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None:
        """Store a block whose CID the caller has just computed from ``data`` (the importer);
        anything received from elsewhere goes through :meth:`put`."""
        if cid.hash_code == IDENTITY:
            return
        path = self._path(cid)
        if path.exists():
            return
        self._ensure_fan(path)
        # Unique per process and thread: two writers of the same block never share a file.
        tmp = self._tmp / f"{path.name}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def batch(self, *, threads: int = 2, max_pending: int = 16) -> Iterator[BatchWriter]:
        """A sink whose writes run on background threads while the caller goes on hashing
        (creating a file per block costs about as much as hashing it). At most
        ``max_pending`` blocks wait in memory; leaving the block waits for every write and
        raises the first error."""
        writer = BatchWriter(self, threads=threads, max_pending=max_pending)
        try:
            yield writer
        finally:
            writer.close()

    def delete(self, cid: CID) -> bool:
        """Remove a block; returns whether it was there. Pins are not consulted."""
        try:
            self._path(cid).unlink()
        except FileNotFoundError:
            return False
        return True

    def size(self, cid: CID) -> int:
        """The stored block's length in bytes."""
        try:
            return self._path(cid).stat().st_size
        except FileNotFoundError:
            raise BlockNotFound(f"block {cid} is not in the store", cid=str(cid)) from None

    def _block_files(self) -> Iterator[os.DirEntry[str]]:
        with os.scandir(self._blocks) as fans:
            fan_dirs = [fan.path for fan in fans if fan.is_dir()]
        for fan in fan_dirs:
            with os.scandir(fan) as files:
                yield from (f for f in files if f.is_file())

    def stats(self) -> BlockstoreStats:
        """Number and total size of stored blocks, and the number of pins."""
        blocks = total = 0
        for entry in self._block_files():
            blocks += 1
            total += entry.stat().st_size
        return BlockstoreStats(blocks, total, len(self.pins()))

    # -- pins and garbage collection ----------------------------------------------------

    def pin(self, cid: CID) -> None:
        """Pin ``cid`` recursively: the garbage collector keeps every block reachable from
        it. The DAG need not be complete yet (the rest may still be fetched)."""
        (self._pins / str(cid)).touch()

    def unpin(self, cid: CID) -> bool:
        """Remove a pin; returns whether it existed. Blocks go at the next :meth:`gc`."""
        try:
            (self._pins / str(cid)).unlink()
        except FileNotFoundError:
            return False
        return True

    def pins(self) -> list[CID]:
        out: list[CID] = []
        for name in sorted(os.listdir(self._pins)):
            try:
                out.append(CID.parse(name))
            except InvalidCID:
                continue  # not ours; left alone
        return out

    def is_pinned(self, cid: CID) -> bool:
        return (self._pins / str(cid)).exists()

    def reachable(self, roots: list[CID]) -> set[bytes]:
        """Multihashes of the stored blocks reachable from ``roots`` (missing ones skipped;
        dag-pb blocks are read, verified and followed; raw blocks have no links)."""
        seen: set[bytes] = set()
        stack = list(roots)
        while stack:
            cid = stack.pop()
            key = cid.multihash
            if key in seen or not self.has(cid):
                continue
            seen.add(key)
            if cid.codec == DAG_PB:
                stack.extend(link.cid for link in decode_node(self.get(cid)).links)
        return seen

    def gc(self, *, grace_s: float = 300.0) -> GCResult:
        """Delete every block not reachable from a pin.

        Blocks written in the last ``grace_s`` seconds are kept: an import or a transfer in
        progress has stored blocks it has not pinned yet.
        """
        with self._gc_lock:
            started = time.time()
            keep = {key.hex() for key in self.reachable(self.pins())}
            removed = removed_bytes = kept = 0
            for entry in list(self._block_files()):
                st = entry.stat()
                if entry.name in keep or st.st_mtime > started - grace_s:
                    kept += 1
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed += 1
                removed_bytes += st.st_size
            return GCResult(removed, removed_bytes, kept)


class BatchWriter:
    """Writes blocks to a :class:`Blockstore` on a few threads (see
    :meth:`Blockstore.batch`); an importer's sink."""

    def __init__(self, store: Blockstore, *, threads: int, max_pending: int) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blockstore")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._errors: list[BaseException] = []
        self._closed = False

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None:
        if self._errors:
            raise self._errors[0]
        if self._closed:
            raise RuntimeError("the batch is closed")
        self._slots.acquire()
        future = self._pool.submit(self._store.put_trusted, cid, data)
        future.add_done_callback(self._done)

    def put(self, cid: CID, data: bytes) -> None:
        cid.verify(data)
        self.put_trusted(cid, data)

    def _done(self, future: Future[None]) -> None:
        self._slots.release()
        error = future.exception()
        if error is not None:
            self._errors.append(error)

    def close(self) -> None:
        """Wait for every write; raise the first one that failed."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]
