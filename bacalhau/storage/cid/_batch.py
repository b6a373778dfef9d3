"""Imports written to a :class:`~bacalhau.storage.cid.Blockstore` on background threads."""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._cid import CID

if TYPE_CHECKING:
    from ._blockstore import Blockstore, Row

__all__ = ["BatchWriter"]

#: A :class:`BatchWriter` thread writes blocks this many bytes at a time: few enough that
#: they are still in the CPU's cache from being hashed (4 MiB cost more system time).
DEFAULT_WRITE_BYTES: Final = 1 << 20
#: ... and commits their index rows this many at a time (a commit rewrites the index pages
#: it touched, so one per block would cost more than writing the block).
DEFAULT_INDEX_ROWS: Final = 128


class BatchWriter:
    """Writes blocks to a :class:`Blockstore` on a few threads (see
    :meth:`Blockstore.batch`); an importer's sink.

    Each thread gathers ``write_bytes`` of blocks (a few chunks, still in the CPU's cache
    from being hashed) and writes them with one ``writev``, and commits their index rows
    ``index_rows`` at a time: not a syscall and two commits a block. A block is in the
    store once its row is committed; every block once the batch is closed. A crash in
    between leaves unreferenced bytes only.

    Buffers handed over with :meth:`put_frame` are kept once written and handed back by
    :meth:`spare_frame`, so an importer reuses a few buffers instead of faulting in fresh
    memory for every chunk.
    """

    def __init__(
        self,
        store: Blockstore,
        *,
        threads: int,
        max_pending: int,
        write_bytes: int = DEFAULT_WRITE_BYTES,
        index_rows: int = DEFAULT_INDEX_ROWS,
    ) -> None:
        if threads < 1 or max_pending < 1:
            raise ValueError("a batch needs at least one thread and one pending block")
        self._store = store
        self._write_bytes = write_bytes
        self._index_rows = index_rows
        self._queue: queue.Queue[_Pending | None] = queue.Queue(max_pending)
        self._spares: deque[bytearray] = deque(maxlen=max_pending + threads)
        self._errors: list[BaseException] = []
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"blockstore-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None:
        """Queue a block for writing (waits while ``max_pending`` blocks are queued)."""
        self._queue_block(_Pending(cid, data, recycle=False))

    def put_frame(self, cid: CID, frame: bytearray) -> None:
        """Queue a block whose buffer the writer may keep for :meth:`spare_frame` once
        written: the caller must not touch ``frame`` again."""
        self._queue_block(_Pending(cid, frame, recycle=True))

    def spare_frame(self, size: int) -> bytearray | None:
        """A buffer of ``size`` bytes that a written :meth:`put_frame` block freed, if any."""
        while True:
            try:
                frame = self._spares.popleft()
            except IndexError:
                return None
            if len(frame) == size:
                return frame

    def put(self, cid: CID, data: bytes) -> None:
        cid.verify(data)
        self.put_trusted(cid, data)

    def _queue_block(self, block: _Pending) -> None:
        if self._errors:
            raise self._errors[0]
        if self._closed:
            raise RuntimeError("the batch is closed")
        self._queue.put(block)

    def _run(self) -> None:
        rows: list[Row] = []
        unindexed: set[bytes] = set()  # written, row not committed yet: no second copy
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            size = len(first.data)
            while size < self._write_bytes:
                more = self._queue.get()
                if more is None:
                    stop = True
                    break
                group.append(more)
                size += len(more.data)
            if not self._errors:  # after a failure, drain without writing
                try:
                    fresh = [(b.cid, b.data) for b in group if b.cid.multihash not in unindexed]
                    written = self._store._append_unindexed(fresh)
                    rows.extend(written)
                    unindexed.update(row[0] for row in written)
                    if len(rows) >= self._index_rows:
                        self._store._index(rows)
                        rows.clear()
                        unindexed.clear()
                except BaseException as error:  # raised to the caller by put or close
                    self._errors.append(error)
            for block in group:
                if block.recycle and isinstance(block.data, bytearray):
                    self._spares.append(block.data)
        try:
            self._store._index(rows)  # whatever was written, even after a failure
        except BaseException as error:
            self._errors.append(error)

    def close(self) -> None:
        """Wait for every write and its index row; raise the first failure."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
        if self._errors:
            raise self._errors[0]


@dataclass(frozen=True, slots=True)
class _Pending:
    cid: CID
    data: bytes | bytearray
    recycle: bool
