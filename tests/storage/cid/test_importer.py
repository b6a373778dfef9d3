"""The importer streams: bounded memory whatever the size, and the same CID however the
bytes arrive."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from bacalhau.errors import InvalidRequest
from bacalhau.storage.cid import CID, Importer, ImportOptions

from .conftest import CHUNK, seeded_bytes


class GeneratedStream(io.RawIOBase):
    """``size`` bytes made on the fly (a counter hashed in blocks), read in odd sizes."""

    def __init__(self, size: int, max_read: int | None = None) -> None:
        self.left = size
        self.counter = 0
        self.max_read = max_read
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.left, self.max_read or len(buffer))
        while len(self.pending) < want:
            self.counter += 1
            seed = hashlib.sha256(self.counter.to_bytes(8, "big")).digest()
            self.pending += seed * 2048  # 64 KiB
        buffer[:want] = self.pending[:want]
        self.pending = self.pending[want:]
        self.left -= want
        return want


class CountingSink:
    """Takes every block and keeps only counts (what matters here is what the importer
    itself holds on to)."""

    def __init__(self) -> None:
        self.blocks = 0

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None:
        self.blocks += 1


def test_a_300_mb_stream_is_imported_in_bounded_memory() -> None:
    size = 300 * 1024 * 1024
    sink = CountingSink()
    tracemalloc.start()
    try:
        result = Importer(sink).add_stream(io.BufferedReader(GeneratedStream(size)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == size and sink.blocks == 1200 + 7 + 1
    # A few 256 KiB chunks and blocks in flight, never the file (300 MiB).
    assert peak < 4 * 1024 * 1024, peak


def test_short_reads_give_the_same_cid_as_whole_bytes() -> None:
    """A pipe hands out whatever it has; chunk boundaries must not follow the reads."""
    size = 3 * CHUNK + 123
    whole = GeneratedStream(size).read(size)
    assert whole is not None and len(whole) == size
    for options in (ImportOptions(), ImportOptions(cid_version=1)):
        from_bytes = Importer(None, options).add_bytes(whole).cid
        trickled = Importer(None, options).add_stream(GeneratedStream(size, max_read=10_007))  # type: ignore[arg-type]
        assert trickled.cid == from_bytes


def test_import_options_that_cannot_exist_are_refused() -> None:
    with pytest.raises(ValueError):
        ImportOptions(cid_version=0, raw_leaves=True)
    with pytest.raises(ValueError):
        ImportOptions(cid_version=2)


def test_tsize_counts_serialized_bytes_and_size_counts_file_bytes() -> None:
    result = Importer().add_bytes(seeded_bytes("t", 2 * CHUNK))
    leaf_block = 262_158  # a full-chunk dag-pb leaf (reference §4)
    assert result.size == 2 * CHUNK
    assert result.tsize > 2 * leaf_block and result.tsize < 2 * leaf_block + 200


def test_a_fifo_at_the_top_is_refused_as_bad_input(tmp_path: Path) -> None:
    # It used to be a bare ValueError, which `bacalhau data add` printed as a traceback.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidRequest, match="has no content to add") as err:
        Importer().add_path(fifo)
    assert err.value.hint
    # Inside a tree it is skipped, as `ipfs add -r` skips it.
    (tmp_path / "file").write_bytes(b"x")
    assert Importer().add_path(tmp_path).cid
