"""WAL checkpoints off the connection that writes.

In WAL mode SQLite appends each commit to the ``-wal`` file; a checkpoint copies the pages
back into the database file and, with ``synchronous=NORMAL``, waits for the disk. By default
the commit that takes the WAL past 1,000 pages makes that checkpoint itself: on a node, the
event loop stops for the copy and the ``fsync`` (milliseconds on a busy disk) once every few
dozen commits. :class:`BackgroundCheckpoints` turns the writer's automatic checkpoint off and
makes them from a daemon thread of its own, with a connection of its own, every
``interval`` seconds: ``PASSIVE`` checkpoints, which never wait for the writer nor make it
wait. The thread copies each page once however often it changed since the last one.

The writer starts the WAL over at its next transaction once all of it was copied back. A
writer that never pauses between transactions would never find it so, and its WAL would
grow without end: past ``restart_frames`` frames the thread makes a ``RESTART`` checkpoint
instead, which holds the next transaction back (the writer's busy timeout) for the copy of
the few frames the ``PASSIVE`` one left, so that the WAL starts over. Closing the writer's
connection checkpoints what is left, as SQLite always does.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_RESTART_FRAMES", "BackgroundCheckpoints"]

_log = logging.getLogger(__name__)

#: Seconds between two checkpoints: at a few hundred commits a second, a few MB of WAL.
DEFAULT_INTERVAL = 0.25
#: WAL frames (of a page each) past which a checkpoint starts the WAL over (32 MB of 4 KB).
DEFAULT_RESTART_FRAMES = 8192


class BackgroundCheckpoints:
    """Checkpoints of the WAL database ``path``, made by a daemon thread; see the module.

    :meth:`take_over` gives it the writer's connection (from the writer's thread);
    :meth:`close` stops the thread (before the writer closes its connection).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        interval: float = DEFAULT_INTERVAL,
        restart_frames: int = DEFAULT_RESTART_FRAMES,
    ) -> None:
        self._path = str(path)
        self._interval = interval
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: How many checkpoints the thread made, and how many started the WAL over.
        self.checkpoints = 0
        self.restarts = 0

    def take_over(self, writer: sqlite3.Connection) -> None:
        """Turn ``writer``'s automatic checkpoints off and start making them here (``writer``
        needs a busy timeout: see the module)."""
        if self._thread is not None:
            return
        writer.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoints:{Path(self._path).name}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (what is left is checkpointed when the writer closes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as err:
            _log.warning("WAL checkpoints of %s stopped: %s", self._path, err)
            return
        try:
            db.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(self._interval):
                try:
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > self._restart_frames:
                        busy, _, _ = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                        # Busy: the writer held on past our timeout; the next turn tries again.
                        self.restarts += not busy
                    self.checkpoints += 1
                except sqlite3.Error as err:
                    # Another checkpoint in progress, or a disk error the writer will
                    # report itself: try again at the next interval.
                    _log.debug("WAL checkpoint of %s failed: %s", self._path, err)
        finally:
            db.close()
