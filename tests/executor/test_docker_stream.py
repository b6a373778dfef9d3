"""Demultiplexing the engine's framed attach stream, whatever the read boundaries."""

from __future__ import annotations

import io
import struct

import pytest

from bacalhau.executor.docker._stream import copy_demultiplexed


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class ChunkedReader:
    """A byte source that returns at most ``chunk`` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self._data = io.BytesIO(data)
        self._chunk = chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:
        piece = self._data.read(min(self._chunk, len(buffer)))
        buffer[: len(piece)] = piece
        return len(piece)


STREAM = b"".join(
    [
        frame(1, b"hello "),
        frame(2, b"oops\n"),
        frame(1, b""),  # empty frames happen and carry nothing
        frame(1, b"world\n"),
        frame(2, b"x" * 70_000),  # larger than one read
        frame(1, b"end\n"),
    ]
)


@pytest.mark.parametrize("chunk", [1, 3, 7, 8, 9, 4096, 1 << 20])
def test_frames_split_anywhere_are_reassembled(chunk: int) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    dropped = copy_demultiplexed(ChunkedReader(STREAM, chunk), out, err, limit=1 << 30)
    assert out.getvalue() == b"hello world\nend\n"
    assert err.getvalue() == b"oops\n" + b"x" * 70_000
    assert dropped == (0, 0)


def test_each_stream_is_capped_and_the_rest_counted() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    dropped = copy_demultiplexed(ChunkedReader(STREAM, 5000), out, err, limit=8)
    assert out.getvalue() == b"hello wo"
    assert err.getvalue() == b"oops\nxxx"
    assert dropped == (len(b"hello world\nend\n") - 8, 5 + 70_000 - 8)


def test_truncated_stream_keeps_what_arrived() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    copy_demultiplexed(ChunkedReader(frame(1, b"complete")[:-3], 2), out, err, limit=100)
    assert out.getvalue() == b"compl"
