"""An execution's output as it is streamed: chunks of stdout and stderr, cut into lines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

#: Lines a tail asked for without a count shows (Bacalhau's ``tail=true`` and its CLI's bare
#: ``--tail``). Bacalhau reads that flag as "from the end of the log", which shows a finished
#: job nothing; the log's last lines (ten, as ``tail`` prints) are what its users look for.
TAIL_FLAG_LINES = 10


class LogStream(IntEnum):
    """Which stream a chunk belongs to; the numbers are Bacalhau's ``ExecutionLogType``."""

    STDOUT = 1
    STDERR = 2


@dataclass(frozen=True, slots=True)
class LogRequest:
    """What a follower asks of an execution's output.

    ``tail`` > 0 starts with the last ``tail`` lines of each stream instead of the beginning;
    ``follow`` keeps streaming new output until the execution ends.
    """

    execution_id: str
    follow: bool = False
    tail: int = 0


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of one stream, starting at ``offset`` in that stream's file."""

    stream: LogStream
    offset: int
    data: bytes
    timestamp_ns: int = 0


#: A line longer than this is cut in pieces (a frame stays small whatever the job prints).
MAX_LINE_BYTES = 64 * 1024


class LineSplitter:
    """Cuts each stream's chunks into text lines (each keeping its newline); a partial last
    line waits for the rest unless it grows past :data:`MAX_LINE_BYTES` or the output ends.

    Both API edges cut the same way (the REST WebSocket on the server, the gRPC client on the
    caller's side), so a line is the same whichever way it is read. Cutting the bytes at
    newlines never splits a UTF-8 sequence, and an over-long line is cut before one, so each
    piece decodes on its own.
    """

    def __init__(self) -> None:
        self._partial: dict[LogStream, bytearray] = {}

    def feed(self, chunk: LogChunk) -> list[tuple[LogStream, str]]:
        """The lines ``chunk`` completes, in order."""
        buf = self._partial.setdefault(chunk.stream, bytearray())
        buf += chunk.data
        lines: list[tuple[LogStream, str]] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0 or end + 1 - start > MAX_LINE_BYTES:
                if len(buf) - start <= MAX_LINE_BYTES:
                    break  # (at exactly the limit: the next byte says where a cut may go)
                end = _cut(buf, start + MAX_LINE_BYTES) - 1
            lines.append((chunk.stream, _text(buf[start : end + 1])))
            start = end + 1
        del buf[:start]
        return lines

    def flush(self) -> list[tuple[LogStream, str]]:
        """The unfinished last line of each stream (the output ended)."""
        rest = [(s, _text(b)) for s, b in self._partial.items() if b]
        self._partial.clear()
        return rest


def _cut(buf: bytearray, at: int) -> int:
    """Where to cut an over-long line at or just before ``at``: not inside a UTF-8 sequence
    (a continuation byte, 0b10xxxxxx, never starts a piece), so both pieces decode."""
    cut = at
    while cut > at - 3 and buf[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if buf[cut] & 0xC0 != 0x80 else at


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
