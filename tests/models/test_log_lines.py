"""Cutting an execution's output into lines, as both API edges do."""

from __future__ import annotations

from bacalhau.models import MAX_LINE_BYTES, LineSplitter, LogChunk, LogStream


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
