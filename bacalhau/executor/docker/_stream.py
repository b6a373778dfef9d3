"""Demultiplexing a container's attach stream straight into the ``stdout``/``stderr`` files.

Without a TTY the engine frames the two streams on one connection: an 8-byte header (stream
id, three zero bytes, big-endian payload length) before each payload. We read in large chunks
and write each payload as it arrives, so nothing is held in memory beyond one buffer however
much the job prints, and the files are flushed after every read so they can be followed.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Protocol

_HEADER = struct.Struct(">BxxxL")
_STDOUT = 1
_READ_SIZE = 64 * 1024


class _Readable(Protocol):
    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


class _CappedWriter:
    """Writes up to ``limit`` bytes to ``out`` and counts the rest as dropped."""

    __slots__ = ("dropped", "limit", "out", "written")

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.written = 0
        self.dropped = 0

    def write(self, data: memoryview) -> None:
        room = self.limit - self.written
        if room >= len(data):
            self.out.write(data)
            self.written += len(data)
            return
        if room > 0:
            self.out.write(data[:room])
            self.written += room
        self.dropped += len(data) - max(room, 0)


def disable_timeout(sock: object) -> None:
    """Let a blocking read wait as long as the job runs (the client's timeout is for calls)."""
    for candidate in (sock, getattr(sock, "_sock", None)):
        settimeout = getattr(candidate, "settimeout", None)
        if settimeout is not None:
            settimeout(None)


def copy_demultiplexed(
    source: _Readable, stdout: BinaryIO, stderr: BinaryIO, *, limit: int
) -> tuple[int, int]:
    """Copy frames from ``source`` until end of stream; return bytes dropped (stdout, stderr).

    Each file receives at most ``limit`` bytes; the excess is read and discarded so the job
    never blocks on a full pipe.
    """
    writers = {_STDOUT: _CappedWriter(stdout, limit)}
    err_writer = _CappedWriter(stderr, limit)
    buf = bytearray(_READ_SIZE)
    view = memoryview(buf)
    header = bytearray()
    remaining = 0
    target = err_writer
    while True:
        n = source.readinto(view)
        if not n:
            break
        pos = 0
        while pos < n:
            if remaining == 0:
                take = min(_HEADER.size - len(header), n - pos)
                header += view[pos : pos + take]
                pos += take
                if len(header) < _HEADER.size:
                    continue
                stream_id, remaining = _HEADER.unpack(header)
                header.clear()
                target = writers.get(stream_id, err_writer)
                continue
            take = min(remaining, n - pos)
            target.write(view[pos : pos + take])
            pos += take
            remaining -= take
        # Once per read, not per frame: the files stay current for anyone following the
        # job's logs, while the many small frames of one read still coalesce into one write.
        stdout.flush()
        stderr.flush()
    return writers[_STDOUT].dropped, err_writer.dropped
