"""Blocks on disk, verified on every read, with recursive pins and garbage collection.

Layout under the store's directory::

    index.sqlite        blocks: multihash -> (pack, offset, length, written at); pins; packs
    packs/<id>.pack     blocks appended back to back, up to ``pack_limit`` bytes a pack

Why packs and an SQLite index rather than one file per block: on this project's ext4 test
machines creating a file costs 0.3-1 ms, so a file per 256 KiB block capped imports near
100-300 MB/s, while appending to a pack runs at page-cache speed (see ``bench/storage.py``).
SQLite (WAL) gives the index atomic updates, concurrent readers and safe sharing between
processes; the packs are plain files, read with ``pread``. Blocks are keyed by multihash (as
Kubo's datastores are), so the same bytes under a CIDv0 and a CIDv1 are stored once.

Crash safety: a block's bytes are appended before its index row is committed, so a crash
leaves at worst unreferenced bytes in a pack (reclaimed by compaction), never a row pointing
at nothing; nothing is fsynced, and a block torn by a power loss is refused on read because
every read is verified. An import writes through a :class:`BatchWriter`: the bytes of the
blocks waiting go out in one ``writev`` as they come, their rows are committed 128 at a
time (one commit per block cost more than writing the block). A process killed
mid-import therefore leaves the blocks whose rows it committed (whole and verifiable,
unpinned, so collected once the GC grace period has passed) and, of the rest, only
unreferenced bytes in its pack, which is compacted once its owner is dead.

Each :class:`Blockstore` instance appends to a pack of its own, so processes never write to
the same file. Deleting a block drops its row; :meth:`Blockstore.gc` then compacts packs
that are mostly garbage (copies their live blocks forward and removes the file).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bacalhau._processes import pid_alive
from bacalhau.errors import BlockNotFound, CorruptBlock, InvalidCID

from ._batch import BatchWriter
from ._cid import CID, DAG_PB, IDENTITY
from ._dagpb import decode_node

__all__ = ["Blockstore", "BlockstoreStats", "GCResult"]

DEFAULT_PACK_LIMIT: Final = 256 << 20
#: At most this many buffers go into one ``writev`` (Linux's IOV_MAX is 1024).
_MAX_IOVECS: Final = 512

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_pid INTEGER NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blocks (
    multihash BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    written REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_by_pack ON blocks (pack);
CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class BlockstoreStats:
    """``bytes`` counts live blocks; ``disk_bytes`` the pack files, garbage included."""

    blocks: int
    bytes: int
    pins: int
    disk_bytes: int


@dataclass(frozen=True, slots=True)
class GCResult:
    removed_blocks: int
    removed_bytes: int
    kept_blocks: int
    compacted_packs: int


#: A block's index row: multihash, pack, offset, length, write time.
Row = tuple[bytes, int, int, int, float]


@dataclass(slots=True)
class _WritePack:
    id: int
    fd: int
    size: int


class Blockstore:
    """A CID-addressed block store in a directory (created if missing).

    ``get`` verifies every block against its CID and raises
    :class:`~bacalhau.errors.CorruptBlock` instead of returning damaged bytes. Thread-safe;
    several processes may share one directory. Close it (or use it as a context manager)
    to seal its pack.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, pack_limit: int = DEFAULT_PACK_LIMIT
    ) -> None:
        self.root = Path(root)
        self._packs = self.root / "packs"
        self._packs.mkdir(parents=True, exist_ok=True)
        self._pack_limit = pack_limit
        self._db = sqlite3.connect(
            self.root / "index.sqlite", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        #: Grows with every pin and unpin, so readers of the pin set can tell it is unchanged.
        self.pin_generation = 0
        self._gc_lock = threading.Lock()
        self._writing: _WritePack | None = None
        self._read_fds: dict[int, int] = {}

    def close(self) -> None:
        """Seal this instance's pack and release its files."""
        with self._lock:
            self._seal()
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
            self._db.close()

    def __enter__(self) -> Blockstore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- packs --------------------------------------------------------------------------

    def _pack_path(self, pack: int) -> Path:
        return self._packs / f"{pack:08d}.pack"

    def _seal(self) -> None:
        if self._writing is not None:
            os.close(self._writing.fd)
            self._db.execute("UPDATE packs SET sealed = 1 WHERE id = ?", (self._writing.id,))
            self._writing = None

    def _pack_with_room(self, size: int) -> _WritePack:
        """This instance's pack, a new one when ``size`` more bytes would pass the limit
        (a block larger than the limit gets a pack of its own). Caller holds the lock."""
        current = self._writing
        if current is None or (current.size and current.size + size > self._pack_limit):
            self._seal()
            cursor = self._db.execute("INSERT INTO packs (owner_pid) VALUES (?)", (os.getpid(),))
            pack = int(cursor.lastrowid or 0)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL
            current = self._writing = _WritePack(
                pack, os.open(self._pack_path(pack), flags, 0o644), 0
            )
        return current

    def _append(self, data: bytes | bytearray) -> tuple[int, int]:
        """Append to this instance's pack; returns (pack, offset). Caller holds the lock."""
        return self._append_many([data])[0]

    def _append_many(self, blocks: Sequence[bytes | bytearray]) -> list[tuple[int, int]]:
        """Append ``blocks`` to this instance's pack(s), as few ``writev`` calls as the pack
        limit allows; returns each block's (pack, offset). Caller holds the lock."""
        placed: list[tuple[int, int]] = []
        start = 0
        while start < len(blocks):
            pack = self._pack_with_room(len(blocks[start]))
            end, size = start, 0
            while (
                end < len(blocks)
                and end - start < _MAX_IOVECS
                and (end == start or pack.size + size + len(blocks[end]) <= self._pack_limit)
            ):
                placed.append((pack.id, pack.size + size))
                size += len(blocks[end])
                end += 1
            _write_all(pack.fd, blocks[start:end])
            pack.size += size
            start = end
        return placed

    def _read_fd(self, pack: int) -> int:
        fd = self._read_fds.get(pack)
        if fd is None:
            fd = self._read_fds[pack] = os.open(self._pack_path(pack), os.O_RDONLY)
        return fd

    def _forget_pack(self, pack: int) -> None:
        fd = self._read_fds.pop(pack, None)
        if fd is not None:
            os.close(fd)

    # -- blocks -------------------------------------------------------------------------

    def _row(self, cid: CID) -> tuple[int, int, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT pack, offset, length FROM blocks WHERE multihash = ?", (cid.multihash,)
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def has(self, cid: CID) -> bool:
        """Whether the block is stored (not verified; ``get`` verifies)."""
        return cid.hash_code == IDENTITY or self._row(cid) is not None

    def get(self, cid: CID) -> bytes:
        """The block's bytes, verified against ``cid``.

        Raises :class:`BlockNotFound` when it is absent and :class:`CorruptBlock` when its
        bytes do not match.
        """
        if cid.hash_code == IDENTITY:
            return cid.digest
        for attempt in range(2):
            row = self._row(cid)
            if row is None:
                raise BlockNotFound(f"block {cid} is not in the store", cid=str(cid))
            pack, offset, length = row
            try:
                with self._lock:
                    data = os.pread(self._read_fd(pack), length, offset)
            except FileNotFoundError:
                # Compacted away by another process between lookup and open: look again.
                if attempt:
                    raise
                continue
            if len(data) != length:
                raise CorruptBlock(f"block {cid} is truncated in the store", cid=str(cid))
            cid.verify(data)
            return data
        raise AssertionError("unreachable")

    def put(self, cid: CID, data: bytes | bytearray) -> None:
        """Store a block after checking it hashes to ``cid`` (:class:`CorruptBlock` if not)."""
        cid.verify(data)
        self.put_trusted(cid, data)

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None:
        """Store a block whose CID the caller has just computed from ``data`` (the importer);
        anything received from elsewhere goes through :meth:`put`."""
        self.put_many_trusted([(cid, data)])

    def put_many_trusted(self, blocks: Sequence[tuple[CID, bytes | bytearray]]) -> None:
        """Store several blocks as :meth:`put_trusted` does, with one write for their bytes
        and one transaction for their rows (the bytes first, so a crash in between leaves
        only unreferenced bytes)."""
        self._index(self._append_unindexed(blocks))

    def _append_unindexed(self, blocks: Sequence[tuple[CID, bytes | bytearray]]) -> list[Row]:
        """Append the bytes of the blocks the index lacks, in one ``writev``, and return
        their rows for :meth:`_index`; refresh the write time of the others."""
        wanted: dict[bytes, bytes | bytearray] = {}
        for cid, data in blocks:
            if cid.hash_code != IDENTITY:
                wanted.setdefault(cid.multihash, data)
        if not wanted:
            return []
        now = time.time()
        with self._lock:
            # Looked up first, a read: refreshing is a write transaction, which a fresh
            # import (nothing there yet) should not pay for every few blocks.
            marks = ",".join("?" * len(wanted))
            present = self._db.execute(
                f"SELECT multihash FROM blocks WHERE multihash IN ({marks})", tuple(wanted)
            ).fetchall()
            if present:
                # Already there: refresh its write time, so a GC running now cannot drop
                # a block that an import in progress has just relied on. Only what this
                # statement refreshed counts as stored: a GC may have deleted the rest
                # since the lookup, and it is written again.
                marks = ",".join("?" * len(present))
                refreshed = self._db.execute(
                    f"UPDATE blocks SET written = ? WHERE multihash IN ({marks}) "
                    "RETURNING multihash",
                    (now, *(row[0] for row in present)),
                ).fetchall()
                for (multihash,) in refreshed:
                    del wanted[multihash]
            keys = list(wanted)
            placed = self._append_many([wanted[key] for key in keys])
        return [
            (key, pack, offset, len(wanted[key]), now)
            for key, (pack, offset) in zip(keys, placed, strict=True)
        ]

    def _index(self, rows: Sequence[Row]) -> None:
        """Commit the rows of appended blocks, in one transaction."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, cid: CID) -> bool:
        """Forget a block; returns whether it was there. Pins are not consulted; the bytes
        are reclaimed when :meth:`gc` compacts its pack."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM blocks WHERE multihash = ?", (cid.multihash,))
        return cursor.rowcount > 0

    def size(self, cid: CID) -> int:
        """The stored block's length in bytes."""
        row = self._row(cid)
        if row is None:
            raise BlockNotFound(f"block {cid} is not in the store", cid=str(cid))
        return row[2]

    def stats(self) -> BlockstoreStats:
        """Number and total size of stored blocks, pins, and bytes the packs take."""
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length), 0) FROM blocks"
            ).fetchone()
            (pins,) = self._db.execute("SELECT COUNT(*) FROM pins").fetchone()
        disk = sum(p.stat().st_size for p in self._packs.glob("*.pack"))
        return BlockstoreStats(int(count), int(total), int(pins), disk)

    @contextmanager
    def batch(self, *, threads: int = 1, max_pending: int = 32) -> Iterator[BatchWriter]:
        """A sink whose writes run on a background thread while the caller goes on hashing.
        At most ``max_pending`` blocks wait in memory; leaving the block waits for every
        write and raises the first error."""
        writer = BatchWriter(self, threads=threads, max_pending=max_pending)
        try:
            yield writer
        finally:
            writer.close()

    # -- pins and garbage collection ----------------------------------------------------

    def pin(self, cid: CID) -> None:
        """Pin ``cid`` recursively: the garbage collector keeps every block reachable from
        it. The DAG need not be complete yet (the rest may still be fetched)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO pins VALUES (?)", (str(cid),))
            self.pin_generation += 1

    def unpin(self, cid: CID) -> bool:
        """Remove a pin; returns whether it existed. Blocks go at the next :meth:`gc`."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM pins WHERE cid = ?", (str(cid),))
            self.pin_generation += 1
        return cursor.rowcount > 0

    def pins(self) -> list[CID]:
        with self._lock:
            rows = self._db.execute("SELECT cid FROM pins ORDER BY cid").fetchall()
        out: list[CID] = []
        for (text,) in rows:
            try:
                out.append(CID.parse(text))
            except InvalidCID:
                continue
        return out

    def is_pinned(self, cid: CID) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM pins WHERE cid = ?", (str(cid),)).fetchone()
        return row is not None

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
        """Delete every block not reachable from a pin, then compact packs that are more
        than half garbage.

        Blocks written in the last ``grace_s`` seconds are kept: an import or a transfer in
        progress has stored blocks it has not pinned yet.
        """
        with self._gc_lock:
            keep = self.reachable(self.pins())
            cutoff = time.time() - grace_s
            with self._lock:
                rows = self._db.execute("SELECT multihash, length, written FROM blocks").fetchall()
            doomed = [(mh, n) for mh, n, written in rows if mh not in keep and written < cutoff]
            removed = removed_bytes = 0
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for mh, length in doomed:
                        # Only if still old: a put since the scan refreshed its write time.
                        cursor = self._db.execute(
                            "DELETE FROM blocks WHERE multihash = ? AND written < ?",
                            (mh, cutoff),
                        )
                        removed += cursor.rowcount
                        removed_bytes += length * cursor.rowcount
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            compacted = self._compact()
            return GCResult(removed, removed_bytes, len(rows) - removed, compacted)

    def _compact(self) -> int:
        """Rewrite packs that are mostly garbage; returns how many were removed."""
        with self._lock:
            current = self._writing.id if self._writing is not None else None
            packs = self._db.execute(
                "SELECT p.id, p.owner_pid, p.sealed, COALESCE(SUM(b.length), 0) "
                "FROM packs p LEFT JOIN blocks b ON b.pack = p.id GROUP BY p.id"
            ).fetchall()
        removed = 0
        for pack, owner, sealed, live in packs:
            if pack == current or not (sealed or not pid_alive(owner)):
                continue  # still being written, by us or by another live process
            path = self._pack_path(pack)
            size = path.stat().st_size if path.exists() else 0
            if live * 2 > size:
                continue
            with self._lock:
                rows = self._db.execute(
                    "SELECT multihash, offset, length FROM blocks WHERE pack = ?", (pack,)
                ).fetchall()
                fd = self._read_fd(pack) if rows else -1
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for mh, offset, length in rows:
                        new_pack, new_offset = self._append(os.pread(fd, length, offset))
                        self._db.execute(
                            "UPDATE blocks SET pack = ?, offset = ? WHERE multihash = ?",
                            (new_pack, new_offset, mh),
                        )
                    self._db.execute("DELETE FROM packs WHERE id = ?", (pack,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._forget_pack(pack)
                path.unlink(missing_ok=True)
            removed += 1
        return removed


def _write_all(fd: int, buffers: Sequence[bytes | bytearray]) -> None:
    """``writev`` every buffer, resuming after short writes."""
    views = [memoryview(b) for b in buffers if len(b)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
