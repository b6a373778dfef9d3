"""WAL checkpoints made by a thread of their own: the writer never checkpoints, the thread
copies its commits back into the database file, and what it has not copied is in the
database all the same once the writer closes, or after the writer is killed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from bacalhau._wal_checkpoints import BackgroundCheckpoints
from bacalhau.compute import ExecutionStore
from bacalhau.orchestrator import JobStore
from bacalhau.publisher._archive_store import STORE_FILE, ArchiveStore


def _writer(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    return db


def _write(db: sqlite3.Connection, n: int) -> None:
    for i in range(n):
        db.execute("INSERT INTO t (data) VALUES (?)", (os.urandom(2000) + bytes([i % 256]),))


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_thread_checkpoints_what_the_writer_no_longer_does(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    db = _writer(path)
    db.execute("PRAGMA busy_timeout=5000")
    checkpoints = BackgroundCheckpoints(path, interval=0.02, restart_frames=2000)
    checkpoints.take_over(db)
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        before = path.stat().st_size
        _write(db, 3000)  # ~6 MB: past the 1,000 pages a writer would checkpoint at
        # Only a checkpoint writes the database file: the thread's did.
        _wait(lambda: path.stat().st_size > before + 5_000_000)
        assert checkpoints.checkpoints > 0
        # A writer that never pauses, writing until the thread started the WAL over three
        # times: the WAL file (never cut) reuses its start, so it grows by far less than the
        # same rows take in a WAL nobody checkpoints (the baseline, written after).
        wal = Path(f"{path}-wal").stat().st_size
        restarts, rows = checkpoints.restarts, 0
        while checkpoints.restarts < restarts + 3:
            _write(db, 500)
            rows += 500
            assert rows <= 100_000, "the thread never started the WAL over"
        growth = Path(f"{path}-wal").stat().st_size - wal
    finally:
        checkpoints.close()
        db.close()
    assert not Path(f"{path}-wal").exists()  # the writer's close checkpointed the rest
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (3000 + rows,)
    baseline = _writer(tmp_path / "baseline.sqlite")
    try:
        baseline.execute("PRAGMA wal_autocheckpoint=0")
        _write(baseline, 3000)
        start = Path(f"{tmp_path}/baseline.sqlite-wal").stat().st_size
        _write(baseline, rows)
        unchecked = Path(f"{tmp_path}/baseline.sqlite-wal").stat().st_size - start
    finally:
        baseline.close()
    # Without a restart the two grow alike (the same frames). How much less it grows with
    # three depends on when they came, which a loaded machine moves (0.6 of it seen): a
    # tenth less shows the start was reused.
    assert growth < unchecked * 0.9, (growth, unchecked)


def test_close_stops_the_thread(tmp_path: Path) -> None:
    def threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("wal-checkpoints")]

    before = threads()
    with ExecutionStore(tmp_path / "compute.db"):
        assert "wal-checkpoints:compute.db" in threads()
    store = JobStore(tmp_path / "jobs.db")
    archives = ArchiveStore(tmp_path / "published")
    assert {"wal-checkpoints:jobs.db", f"wal-checkpoints:{STORE_FILE}"} <= set(threads())
    store.close()
    archives.close()
    assert threads() == before


_KILLED_WRITER = """
import os, sqlite3, sys
from bacalhau._wal_checkpoints import BackgroundCheckpoints
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
BackgroundCheckpoints(sys.argv[1], interval=3600).take_over(db)  # never checkpoints
for i in range(500):
    db.execute("INSERT INTO t (data) VALUES (?)", (os.urandom(1000),))
print("written", flush=True)
sys.stdin.read()
"""


def test_commits_not_checkpointed_survive_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert Path(f"{path}-wal").stat().st_size > 500_000  # all of it still in the WAL
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (500,)
