"""LogReader: an execution's stdout/stderr files read from an offset, followed while they grow."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bacalhau.compute._logs import LogReader, discard_results_keeping_logs, tail_offset
from bacalhau.models import LogChunk, LogStream


def _joined(chunks: list[LogChunk], stream: LogStream) -> bytes:
    parts = [c for c in chunks if c.stream is stream]
    offset = 0
    for c in parts:  # contiguous, in order
        assert c.offset == offset
        offset += len(c.data)
    return b"".join(c.data for c in parts)


async def _collect(reader: LogReader, *, follow: bool, tail: int = 0) -> list[LogChunk]:
    return [c async for c in reader.chunks(follow=follow, tail=tail)]


async def test_replays_both_streams_whole_in_chunks(tmp_path: Path) -> None:
    out = os.urandom(300_000)  # several chunks, binary
    (tmp_path / "stdout").write_bytes(out)
    (tmp_path / "stderr").write_bytes(b"warn\n")
    reader = LogReader(tmp_path, finished=lambda: False, chunk_bytes=64 * 1024)

    chunks = await _collect(reader, follow=False)

    assert _joined(chunks, LogStream.STDOUT) == out
    assert _joined(chunks, LogStream.STDERR) == b"warn\n"
    assert all(len(c.data) <= 64 * 1024 for c in chunks)


async def test_follow_yields_lines_while_written_and_ends_with_the_execution(
    tmp_path: Path,
) -> None:
    done = asyncio.Event()
    written: list[str] = []

    async def workload() -> None:
        # Not created yet when the follower starts: the reader waits for the file.
        await asyncio.sleep(0.05)
        with open(tmp_path / "stdout", "ab", buffering=0) as f:  # noqa: ASYNC230 (a test workload)
            for i in range(5):
                f.write(f"line-{i}\n".encode())
                written.append(f"line-{i}")
                await asyncio.sleep(0.05)
        done.set()

    reader = LogReader(tmp_path, finished=done.is_set, poll_interval=0.005)
    writer = asyncio.create_task(workload())
    seen: list[tuple[bytes, int]] = []
    async for chunk in reader.chunks(follow=True):
        seen.append((chunk.data, len(written)))
    await writer

    assert b"".join(d for d, _ in seen) == b"".join(f"line-{i}\n".encode() for i in range(5))
    # The first line arrived while the workload still had lines to write.
    assert seen[0][1] < 5


async def test_follow_of_a_finished_execution_replays_and_ends(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"a\nb\n")
    reader = LogReader(tmp_path, finished=lambda: True)

    chunks = await asyncio.wait_for(_collect(reader, follow=True), 5)

    assert _joined(chunks, LogStream.STDOUT) == b"a\nb\n"


async def test_tail_starts_at_the_last_lines_of_each_stream(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"1\n2\n3\n4\n")
    (tmp_path / "stderr").write_bytes(b"x\ny\nz")  # last line without its newline
    reader = LogReader(tmp_path, finished=lambda: True)

    chunks = await _collect(reader, follow=False, tail=2)

    assert b"".join(c.data for c in chunks if c.stream is LogStream.STDOUT) == b"3\n4\n"
    assert b"".join(c.data for c in chunks if c.stream is LogStream.STDERR) == b"y\nz"


async def test_a_resumed_reader_starts_each_stream_at_its_byte(tmp_path: Path) -> None:
    """A follower resuming where its stream broke: each stream from the byte it names,
    each chunk saying where it starts; the tail is not read."""
    (tmp_path / "stdout").write_bytes(b"1\n2\n3\n4\n")
    (tmp_path / "stderr").write_bytes(b"x\ny\nz")
    reader = LogReader(tmp_path, finished=lambda: True)

    start = {LogStream.STDOUT: 4, LogStream.STDERR: 2}
    chunks = [c async for c in reader.chunks(follow=True, tail=1, start=start)]

    assert [(c.stream, c.offset, c.data) for c in chunks] == [
        (LogStream.STDOUT, 4, b"3\n4\n"),
        (LogStream.STDERR, 2, b"y\nz"),
    ]
    # At (or past) the end: nothing more, and no error.
    past = {LogStream.STDOUT: 8, LogStream.STDERR: 99}
    assert [c async for c in reader.chunks(follow=False, start=past)] == []


def test_tail_offset_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    lines = [f"{i:05d}\n".encode() for i in range(1000)]
    path.write_bytes(b"".join(lines))

    assert tail_offset(path, 3, block=7) == 6 * 997
    assert tail_offset(path, 5000, block=64) == 0
    assert tail_offset(tmp_path / "missing", 3) == 0


def _open_fds(under: Path) -> int:
    """How many of this process's descriptors are open on files under ``under`` (others come
    and go with whatever else the process does, such as collecting an earlier test's
    sockets)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        count += target.startswith(f"{under}/")
    return count


async def test_a_follower_that_leaves_closes_its_files(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"first\n")
    (tmp_path / "stderr").write_bytes(b"")
    reader = LogReader(tmp_path, finished=lambda: False, poll_interval=0.005)
    stream = reader.chunks(follow=True)

    first = await anext(stream)
    assert first.data == b"first\n"
    assert _open_fds(tmp_path) > 0
    await stream.aclose()  # type: ignore[attr-defined]

    assert _open_fds(tmp_path) == 0


def test_discarding_published_results_keeps_only_the_output(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"out")
    (tmp_path / "stderr").write_bytes(b"err")
    (tmp_path / "exitCode").write_text("0")
    (tmp_path / "outputs" / "deep").mkdir(parents=True)
    (tmp_path / "outputs" / "deep" / "f").write_text("x")

    discard_results_keeping_logs(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["stderr", "stdout"]
    assert (tmp_path / "stdout").read_bytes() == b"out"
