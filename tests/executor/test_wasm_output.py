"""A WASM run's output pipes: copied by the run itself when short, by the copier when long."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bacalhau.executor.wasm._output import TICK_SECONDS, CappedStreams
from bacalhau.models import RUN_OUTPUT_LIMIT


def test_a_short_run_copies_its_own_output(tmp_path: Path) -> None:
    streams = CappedStreams(tmp_path / "stdout", tmp_path / "stderr", 1 << 20)
    out, err = streams.writer_fds
    os.write(out, b"hello\n")
    os.write(err, b"oops\n")
    assert streams.finish() == (0, 0)
    assert (tmp_path / "stdout").read_bytes() == b"hello\n"
    assert (tmp_path / "stderr").read_bytes() == b"oops\n"
    assert streams.heads() == ((b"hello\n", 6), (b"oops\n", 5))


def test_output_larger_than_a_pipe_is_copied_while_the_run_writes(tmp_path: Path) -> None:
    cap = 100_000
    streams = CappedStreams(tmp_path / "stdout", tmp_path / "stderr", cap)
    out, _ = streams.writer_fds
    written = 3 * 2**20  # many pipes' worth: the writer blocks until the copier takes over

    def module() -> None:
        os.write(out, b"x" * 1000)
        time.sleep(5 * TICK_SECONDS)  # long enough for the copier to take the pipes on
        left = written - 1000
        while left:
            left -= os.write(out, b"y" * min(left, 65536))

    writer = threading.Thread(target=module)
    writer.start()
    # Followers see the output while the run goes on.
    deadline = time.monotonic() + 5
    while (tmp_path / "stdout").stat().st_size < 1000 and time.monotonic() < deadline:
        time.sleep(TICK_SECONDS)
    assert (tmp_path / "stdout").stat().st_size >= 1000
    writer.join(10)
    assert not writer.is_alive()
    assert streams.finish() == (written - cap, 0)
    data = (tmp_path / "stdout").read_bytes()
    assert len(data) == cap and data.startswith(b"x" * 1000)
    # What the summary is made of: the files' first bytes and sizes, as copied.
    assert streams.heads() == ((data[:RUN_OUTPUT_LIMIT], cap), (b"", 0))


def test_many_runs_at_once_each_keep_their_own_output(tmp_path: Path) -> None:
    def run(n: int) -> None:
        streams = CappedStreams(tmp_path / f"out{n}", tmp_path / f"err{n}", 1 << 20)
        out, err = streams.writer_fds
        os.write(out, f"run {n}\n".encode())
        time.sleep((n % 3) * TICK_SECONDS)  # some taken on by the copier, some not
        os.write(err, f"err {n}\n".encode())
        assert streams.finish() == (0, 0)

    runs = [threading.Thread(target=run, args=(n,)) for n in range(24)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(10)
    for n in range(24):
        assert (tmp_path / f"out{n}").read_bytes() == f"run {n}\n".encode()
        assert (tmp_path / f"err{n}").read_bytes() == f"err {n}\n".encode()
