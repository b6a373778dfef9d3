"""Small result archives kept as rows of one SQLite file instead of one file each.

A short execution's archive is a few hundred bytes; writing it as a file of its own costs a
new inode, and creating a file is the dearest thing a short execution's publish does: 150 to
500 microseconds of kernel time each on ext4 in a virtual machine (measured), where writing
to a file that exists, or committing an INSERT to a database in WAL mode, costs about 20.
So the local publisher keeps archives of small results (see ``SMALL_RESULTS_BYTES``) here,
and the result server answers from here for names it finds no file of.

A commit reaches the WAL before :meth:`ArchiveStore.put` returns, so an archive is as durable
as one written to a file (neither waits for the disk): it survives the node's process being
killed. The connection is shared by the event loop (publish, serve) and the retention's
sweep, under a lock; each call is one short statement.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from bacalhau._wal_checkpoints import BackgroundCheckpoints

__all__ = ["ArchiveStore"]

#: The database's file name in the publisher's directory (never a served name: the server
#: answers only ``<execID>.tar.gz``).
STORE_FILE = ".small-archives.db"
#: Free pages given back to the file system after each removal (4 KB each).
_VACUUM_PAGES = 256


class ArchiveStore:
    """Archives by name (``<execID>.tar.gz``), in ``<directory>/.small-archives.db``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            directory / STORE_FILE, isolation_level=None, check_same_thread=False
        )
        try:
            # Space freed by retention is given back in steps (a new file only: set before
            # the first table is made).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Waits out a WAL restart of the checkpoint thread (see _wal_checkpoints).
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS archives (name TEXT PRIMARY KEY, data BLOB NOT NULL)"
            )
            # Checkpoints made off the event loop (see _wal_checkpoints).
            self._checkpoints = BackgroundCheckpoints(directory / STORE_FILE)
            self._checkpoints.take_over(self._db)
        except BaseException:
            self._db.close()
            raise

    def put(self, name: str, data: bytes | memoryview) -> None:
        """Keep ``data`` as the archive ``name`` (replacing one of that name), committed."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO archives (name, data) VALUES (?, ?)", (name, data)
            )

    def get(self, name: str) -> bytes | None:
        """The archive ``name``, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM archives WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row is not None else None

    def forget(self, names: Iterable[str]) -> int:
        """Remove the archives ``names`` (those held); returns how many were."""
        wanted = [(name,) for name in names]
        if not wanted:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM archives WHERE name = ?", wanted)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            removed = self._db.total_changes - before
            if removed:
                self._db.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})")
        return removed

    def close(self) -> None:
        self._checkpoints.close()
        with self._lock:
            self._db.close()
