"""The operator's decisions about compute nodes (approved, rejected), kept across restarts.

A small SQLite file next to the job store: one row per node an operator decided about. A
node without a row has the default (APPROVED, or PENDING under manual approval).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bacalhau.errors import Unavailable
from bacalhau.models import Membership

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_approvals (
    node_id TEXT PRIMARY KEY,
    membership TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    updated_ns INTEGER NOT NULL
)
"""


class ApprovalStore:
    """Approvals and rejections by node ID, written through at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Opened where the orchestrator is built, used on its event loop (maybe another
            # thread).
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._cache: dict[str, tuple[Membership, str]] = {
                node_id: (Membership(value), message)
                for node_id, value, message in self._db.execute(
                    "SELECT node_id, membership, message FROM node_approvals"
                )
                if value in {m.value for m in Membership}
            }
        except sqlite3.Error as err:
            raise Unavailable(
                f"cannot open the node approvals {path}: {err}",
                hint="restore the file from a backup, or move it away (the operator's "
                "approvals and rejections are then forgotten)",
                component="NodeManager",
            ) from err

    def get(self, node_id: str) -> Membership | None:
        """The operator's decision about ``node_id``, or None if there is none."""
        decided = self._cache.get(node_id)
        return decided[0] if decided is not None else None

    def message(self, node_id: str) -> str:
        """What the operator said with the decision about ``node_id`` ("" if nothing)."""
        decided = self._cache.get(node_id)
        return decided[1] if decided is not None else ""

    def set(self, node_id: str, membership: Membership, message: str = "") -> None:
        self._db.execute(
            "INSERT INTO node_approvals (node_id, membership, message, updated_ns) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET "
            "membership = excluded.membership, message = excluded.message, "
            "updated_ns = excluded.updated_ns",
            (node_id, membership.value, message, time.time_ns()),
        )
        self._cache[node_id] = (membership, message)

    def forget(self, node_id: str) -> None:
        self._db.execute("DELETE FROM node_approvals WHERE node_id = ?", (node_id,))
        self._cache.pop(node_id, None)

    def close(self) -> None:
        self._db.close()
