"""The operator's decisions about compute nodes (approved, rejected), and the compute nodes
this requester has known, kept across restarts.

A small SQLite file next to the job store: one row per node an operator decided about (a
node without a row has the default: APPROVED, or PENDING under manual approval), and one per
compute node seen, with its information and when it was last known alive, written when it
joins, comes back, dies or leaves and when the requester stops. A node that is gone from the
cluster view (a requester restarted while it was down, gossip forgot it) is still listed,
disconnected, until an operator deletes it, as Bacalhau keeps its nodes. A deletion is kept
too (the node's record version then): the other members still hold the node's last record
and teach it to a restarted requester, which must not list the node again until it is back
with a newer one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import Unavailable
from bacalhau.models import LivenessState, Membership, NodeInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_approvals (
    node_id TEXT PRIMARY KEY,
    membership TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS remembered_nodes (
    node_id TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    record_version INTEGER NOT NULL,
    liveness TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deleted_nodes (
    node_id TEXT PRIMARY KEY,
    record_version INTEGER NOT NULL,
    deleted_ns INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class KnownNode:
    """A compute node as this requester last knew it."""

    info: NodeInfo
    #: When it was last known alive (Unix ns).
    last_seen_ns: int
    #: Its record's version then: a newer record means it has been alive since.
    record_version: int
    #: Its liveness then: DEAD or LEFT once it went down, ALIVE while it was up.
    liveness: LivenessState = LivenessState.ALIVE


class ApprovalStore:
    """Approvals and rejections by node ID, written through at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Opened where the orchestrator is built, used on its event loop (maybe another
            # thread).
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
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
        """Drop the decision about ``node_id``, and what was known of it."""
        self._db.execute("DELETE FROM node_approvals WHERE node_id = ?", (node_id,))
        self._db.execute("DELETE FROM remembered_nodes WHERE node_id = ?", (node_id,))
        self._cache.pop(node_id, None)

    def mark_deleted(self, node_id: str, record_version: int) -> None:
        """Keep that an operator deleted ``node_id`` when its record was ``record_version``."""
        self._db.execute(
            "INSERT INTO deleted_nodes (node_id, record_version, deleted_ns) VALUES (?, ?, ?) "
            "ON CONFLICT(node_id) DO UPDATE SET record_version = excluded.record_version, "
            "deleted_ns = excluded.deleted_ns",
            (node_id, record_version, time.time_ns()),
        )

    def undelete(self, node_id: str) -> None:
        """``node_id`` is back (a newer record): its deletion is over."""
        self._db.execute("DELETE FROM deleted_nodes WHERE node_id = ?", (node_id,))

    def deleted_nodes(self) -> dict[str, int]:
        """Node ID -> its record version when an operator deleted it."""
        rows = self._db.execute("SELECT node_id, record_version FROM deleted_nodes")
        return {node_id: int(version) for node_id, version in rows}

    def known_nodes(self) -> dict[str, KnownNode]:
        """Every compute node remembered, by ID (rows that cannot be read are skipped)."""
        known: dict[str, KnownNode] = {}
        for node_id, info, seen, version, liveness in self._db.execute(
            "SELECT node_id, info, last_seen_ns, record_version, liveness FROM remembered_nodes"
        ):
            try:
                node = NodeInfo.from_dict(json.loads(info))
                state = LivenessState(liveness)
            except (ValueError, TypeError):
                continue
            known[node_id] = KnownNode(node, int(seen), int(version), state)
        return known

    def remember(self, *nodes: KnownNode) -> None:
        """Keep ``nodes`` as known now, in one transaction."""
        rows = [
            (
                n.info.node_id,
                json.dumps(n.info.to_dict()),
                n.last_seen_ns,
                n.record_version,
                n.liveness.value,
            )
            for n in nodes
        ]
        # The connection commits each statement on its own: one explicit transaction.
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO remembered_nodes (node_id, info, last_seen_ns, record_version, "
                "liveness) VALUES (?, ?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET "
                "info = excluded.info, last_seen_ns = excluded.last_seen_ns, "
                "record_version = excluded.record_version, liveness = excluded.liveness",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
