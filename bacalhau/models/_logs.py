"""An execution's output as it is streamed: chunks of stdout and stderr, cut into lines."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from bacalhau.errors import BadQuery

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
    ``stdout_from`` and ``stderr_from`` start each stream at that byte instead (a follower
    resuming where it was, see :class:`LogPosition`); ``follow`` keeps streaming new output
    until the execution ends.
    """

    execution_id: str
    follow: bool = False
    tail: int = 0
    stdout_from: int = 0
    stderr_from: int = 0

    def starts(self) -> dict[LogStream, int] | None:
        """Each stream's first byte when the request resumes at given bytes; None when it
        reads from the beginning (or the tail)."""
        if not (self.stdout_from or self.stderr_from):
            return None
        return {LogStream.STDOUT: self.stdout_from, LogStream.STDERR: self.stderr_from}


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of one stream, starting at ``offset`` in that stream's file."""

    stream: LogStream
    offset: int
    data: bytes
    timestamp_ns: int = 0
    #: The execution that wrote it, where a stream may go on to another (a job's retries).
    execution_id: str = ""


_TOKEN = re.compile(r"([^:\s]{1,200}):(\d{1,18}):(\d{1,18})")


class LogPosition(NamedTuple):
    """How far a follower has read an execution's output: the bytes of each stream it was
    given whole lines of. The logs endpoints give it with each line as a token,
    ``<execution id>:<stdout bytes>:<stderr bytes>``, and take the token back as ``resume``:
    a follower whose stream broke (the requester restarted) goes on from there, with no line
    repeated or lost."""

    execution_id: str
    stdout: int = 0
    stderr: int = 0

    def token(self) -> str:
        """The position as the logs endpoints give and take it ("" when no execution is
        named: a source that does not say whose output it is cannot be resumed)."""
        if not self.execution_id:
            return ""
        return f"{self.execution_id}:{self.stdout}:{self.stderr}"

    def past(self, chunk: LogChunk) -> LogPosition:
        """The position once ``chunk`` of this execution's output has been read."""
        end = chunk.offset + len(chunk.data)
        if chunk.stream is LogStream.STDOUT:
            return self._replace(stdout=end)
        return self._replace(stderr=end)

    @classmethod
    def parse(cls, token: str, *, field: str = "resume") -> LogPosition:
        """The position a token names; :class:`~bacalhau.errors.BadQuery` for one that is
        not a position."""
        found = _TOKEN.fullmatch(token)
        if found is None:
            raise BadQuery(
                f"{field} must be a position in a job's output as a log stream gives it "
                f"(<execution id>:<stdout bytes>:<stderr bytes>), got {token[:100]!r}",
                field=field,
                hint="pass back the token of the last line read, or leave it out to read "
                "from the beginning",
            )
        return cls(found[1], int(found[2]), int(found[3]))


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
        #: Per stream, the offset of the byte after the last one fed.
        self._fed: dict[LogStream, int] = {}

    def feed(self, chunk: LogChunk) -> list[tuple[LogStream, str]]:
        """The lines ``chunk`` completes, in order."""
        return [(stream, text) for stream, text, _ in self.feed_with_ends(chunk)]

    def feed_with_ends(self, chunk: LogChunk) -> list[tuple[LogStream, str, int]]:
        """The lines ``chunk`` completes, in order, each with the offset in its stream of
        the byte after it (chunks of a stream come in order, each starting at its
        ``offset``)."""
        buf = self._partial.setdefault(chunk.stream, bytearray())
        buf += chunk.data
        self._fed[chunk.stream] = chunk.offset + len(chunk.data)
        end = self._fed[chunk.stream] - len(buf)  # the offset of buf[0]
        *whole, rest = bytes(buf).split(b"\n")
        lines: list[tuple[LogStream, str, int]] = []
        stream = chunk.stream
        for part in whole:
            if len(part) >= MAX_LINE_BYTES:  # with its newline, over the limit
                part, end = _cut_long(stream, part, end, lines, newline=True)
            end += len(part) + 1
            lines.append((stream, _text(part) + "\n", end))
        if len(rest) > MAX_LINE_BYTES:
            rest, end = _cut_long(stream, rest, end, lines, newline=False)
        self._partial[stream] = bytearray(rest)
        return lines

    def flush(self) -> list[tuple[LogStream, str]]:
        """The unfinished last line of each stream (the output ended)."""
        return [(stream, text) for stream, text, _ in self.flush_with_ends()]

    def flush_with_ends(self) -> list[tuple[LogStream, str, int]]:
        """:meth:`flush`, each line with the offset of the byte after it."""
        rest = [(s, _text(b), self._fed[s]) for s, b in self._partial.items() if b]
        self._partial.clear()
        return rest


class PositionedLines:
    """Cuts chunks into lines as :class:`LineSplitter` does, each line with the position
    after it (what a follower resumes from). A stream that goes on to another execution (a
    job's retry) ends the last one's unfinished lines first: a line never joins the output
    of two executions."""

    def __init__(self) -> None:
        self._splitter = LineSplitter()
        self._position = LogPosition("")

    def feed(self, chunk: LogChunk) -> list[tuple[LogStream, str, LogPosition]]:
        """The lines ``chunk`` completes (and the last execution's rest, if it is another
        execution's), in order."""
        lines: list[tuple[LogStream, str, LogPosition]] = []
        if chunk.execution_id != self._position.execution_id:
            lines = self.flush()
            self._splitter = LineSplitter()
            self._position = LogPosition(chunk.execution_id)
        return lines + self._placed(self._splitter.feed_with_ends(chunk))

    def flush(self) -> list[tuple[LogStream, str, LogPosition]]:
        """The unfinished last line of each stream (the output ended)."""
        return self._placed(self._splitter.flush_with_ends())

    def _placed(
        self, lines: list[tuple[LogStream, str, int]]
    ) -> list[tuple[LogStream, str, LogPosition]]:
        placed = []
        execution, out, err = self._position
        for stream, text, end in lines:
            if stream is LogStream.STDOUT:
                out = end
            else:
                err = end
            placed.append((stream, text, LogPosition(execution, out, err)))
        if placed:
            self._position = placed[-1][2]
        return placed


def _cut_long(
    stream: LogStream,
    line: bytes,
    end: int,
    lines: list[tuple[LogStream, str, int]],
    *,
    newline: bool,
) -> tuple[bytes, int]:
    """Cut pieces of :data:`MAX_LINE_BYTES` off ``line`` (without its newline, which it
    has if ``newline``) while the rest, with that newline, is longer than that; each piece
    is appended to ``lines``. Returns the rest and the offset where it starts."""
    start = 0
    while len(line) - start + newline > MAX_LINE_BYTES:
        cut = _cut(line, start + MAX_LINE_BYTES)
        end += cut - start
        lines.append((stream, _text(line[start:cut]), end))
        start = cut
    return line[start:], end


def _cut(buf: bytes | bytearray, at: int) -> int:
    """Where to cut an over-long line at or just before ``at``: not inside a UTF-8 sequence
    (a continuation byte, 0b10xxxxxx, never starts a piece), so both pieces decode."""
    if at >= len(buf):
        return at  # the end of what is held (a newline follows it)
    cut = at
    while cut > at - 3 and buf[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if buf[cut] & 0xC0 != 0x80 else at


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
