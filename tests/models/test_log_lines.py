"""Cutting an execution's output into lines, as both API edges do."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bacalhau.errors import BadQuery
from bacalhau.models import (
    MAX_LINE_BYTES,
    LineSplitter,
    LogChunk,
    LogPosition,
    LogStream,
    PositionedLines,
)


def _feed(lines: LineSplitter, stream: LogStream, data: bytes) -> list[str]:
    return [text for _, text in lines.feed(LogChunk(stream, 0, data))]


def test_log_lines_are_cut_at_newlines_whatever_the_chunks() -> None:
    """Chunks end anywhere, even inside a UTF-8 sequence; lines come out whole."""
    data = "héllo\nwörld\nlast".encode()
    lines = LineSplitter()
    out = [t for i in range(len(data)) for t in _feed(lines, LogStream.STDOUT, data[i : i + 1])]
    assert out == ["héllo\n", "wörld\n"]
    assert lines.feed(LogChunk(LogStream.STDERR, 0, b"e\n")) == [(LogStream.STDERR, "e\n")]
    assert lines.flush() == [(LogStream.STDOUT, "last")]
    assert lines.flush() == []


def test_a_line_longer_than_the_limit_comes_in_pieces() -> None:
    lines = LineSplitter()
    long = _feed(lines, LogStream.STDOUT, b"x" * (MAX_LINE_BYTES + 10) + b"\n")
    assert [len(t) for t in long] == [MAX_LINE_BYTES, 11]
    # Without a newline, a piece leaves once the limit is reached, the rest waits.
    assert [len(t) for t in _feed(lines, LogStream.STDOUT, b"y" * (MAX_LINE_BYTES + 3))] == [
        MAX_LINE_BYTES
    ]
    assert [len(t) for _, t in lines.flush()] == [3]


def test_an_over_long_line_is_never_cut_inside_a_character() -> None:
    # 100,000 euro signs (3 bytes each) on one line, fed in 64 KiB chunks as the node reads
    # them: every piece decodes, and together they are the line.
    data = ("€" * 100_000).encode()
    lines = LineSplitter()
    pieces: list[str] = []
    for i in range(0, len(data), 65536):
        pieces += _feed(lines, LogStream.STDOUT, data[i : i + 65536])
    pieces += [t for _, t in lines.flush()]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == "€" * 100_000
    assert all(len(p.encode()) <= MAX_LINE_BYTES for p in pieces)
    # Exactly at the limit, without a newline: the piece waits for the byte after it.
    exact = LineSplitter()
    assert _feed(exact, LogStream.STDOUT, b"z" * MAX_LINE_BYTES) == []
    assert [len(t) for t in _feed(exact, LogStream.STDOUT, b"z")] == [MAX_LINE_BYTES]


def test_positioned_lines_say_where_the_output_goes_on_after_each_line() -> None:
    lines = PositionedLines()
    got = lines.feed(LogChunk(LogStream.STDOUT, 100, b"a\nbb\nc", execution_id="e-1"))
    got += lines.feed(LogChunk(LogStream.STDERR, 0, b"err\n", execution_id="e-1"))
    assert [(s, t, p.token()) for s, t, p in got] == [
        (LogStream.STDOUT, "a\n", "e-1:102:0"),
        (LogStream.STDOUT, "bb\n", "e-1:105:0"),
        (LogStream.STDERR, "err\n", "e-1:105:4"),
    ]
    # The stream goes on to a retry: the first execution's unfinished line ends first, and
    # the retry's positions start afresh.
    got = lines.feed(LogChunk(LogStream.STDOUT, 0, b"new\n", execution_id="e-2"))
    assert [(s, t, p.token()) for s, t, p in got] == [
        (LogStream.STDOUT, "c", "e-1:106:4"),
        (LogStream.STDOUT, "new\n", "e-2:4:0"),
    ]
    assert lines.flush() == []


def test_a_position_reads_back_from_its_token() -> None:
    position = LogPosition("e-0c1d", stdout=12, stderr=3)
    assert LogPosition.parse(position.token()) == position
    for bad in ("", "e-1", "e-1:2", "e-1:-2:0", "e-1:x:0", ":1:2", "e 1:1:2", "e-1:1:2:3"):
        with pytest.raises(BadQuery) as caught:
            LogPosition.parse(bad)
        assert caught.value.field == "resume"
        assert "<execution id>:<stdout bytes>:<stderr bytes>" in caught.value.message


def _reference_lines(chunks: list[bytes]) -> list[tuple[str, int]]:
    """The cutting rule written plainly, one newline at a time: each line with its
    newline, an over-long one in pieces of at most MAX_LINE_BYTES cut before a UTF-8
    sequence, a partial last line held back until the end; each with the offset after it."""
    out: list[tuple[str, int]] = []
    buf = b""
    base = 0

    def cut_at(data: bytes, at: int) -> int:
        if at >= len(data):
            return at
        cut = at
        while cut > at - 3 and data[cut] & 0xC0 == 0x80:
            cut -= 1
        return cut if data[cut] & 0xC0 != 0x80 else at

    def take(upto: int) -> None:
        nonlocal buf, base
        out.append((buf[:upto].decode("utf-8", "replace"), base + upto))
        buf, base = buf[upto:], base + upto

    for chunk in chunks:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl >= 0 and nl + 1 <= MAX_LINE_BYTES:
                take(nl + 1)
            elif nl >= 0 or len(buf) > MAX_LINE_BYTES:
                take(cut_at(buf, MAX_LINE_BYTES))
            else:
                break
    if buf:
        take(len(buf))
    return out


_PIECES = st.sampled_from(
    [b"\n", b"y\n", b"a", "é".encode(), "€".encode(), b"\xff", b"line of text\n"]
    + [b"x" * n for n in (MAX_LINE_BYTES - 2, MAX_LINE_BYTES - 1, MAX_LINE_BYTES)]
    + ["€".encode() * (MAX_LINE_BYTES // 3 + 1)]
)


@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12), cuts=st.lists(st.integers(0, 200_000), max_size=6))
def test_lines_and_their_ends_are_those_of_the_plain_rule(
    pieces: list[bytes], cuts: list[int]
) -> None:
    """Whatever the output and wherever the chunks end, the lines (and the offset after
    each) are those of the rule written one newline at a time."""
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    lines = LineSplitter()
    got: list[tuple[str, int]] = []
    for start, chunk in zip(bounds, chunks, strict=False):
        got += [
            (t, e) for _, t, e in lines.feed_with_ends(LogChunk(LogStream.STDOUT, start, chunk))
        ]
    got += [(t, e) for _, t, e in lines.flush_with_ends()]
    assert got == _reference_lines(chunks)
    assert all(len(t.encode()) <= MAX_LINE_BYTES for t, _ in got if "\ufffd" not in t)
