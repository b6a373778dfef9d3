"""The callback outbox as rows of the execution store.

A callback is queued in the same transaction as the state change it announces, so a crash
never leaves a finished execution unreported; :class:`~bacalhau.compute.CallbackOutbox`
delivers what is queued and deletes it once the requester has it. These functions run on the
store's connection, inside whatever transaction the store opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass

from bacalhau.compute._callbacks import Callback, decode_callback, encode_callback
from bacalhau.compute._store_rows import TERMINAL

__all__ = [
    "OutboxEntry",
    "callback_requesters",
    "callbacks_of",
    "delete_callbacks",
    "enqueue",
    "pending_callbacks",
    "unsettled_ids",
]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A callback waiting to be delivered to ``requester_id``."""

    seq: int
    requester_id: str
    execution_id: str
    message: Callback
    create_time: int


def enqueue(db: sqlite3.Connection, requester_id: str, message: Callback, now: int) -> int:
    """Queue ``message`` for ``requester_id``; its sequence number."""
    kind, payload = encode_callback(message)
    cursor = db.execute(
        "INSERT INTO outbox (requester_id, execution_id, kind, payload, create_time) "
        "VALUES (?,?,?,?,?)",
        (requester_id, message.execution_id, kind, payload, now),
    )
    return int(cursor.lastrowid or 0)


def pending_callbacks(
    db: sqlite3.Connection,
    requester_id: str,
    *,
    limit: int,
    after_seq: int,
    skip: Callable[[int, str], bool] | None = None,
) -> tuple[list[OutboxEntry], int]:
    """The oldest callbacks queued for ``requester_id`` (those after ``after_seq``), but
    those ``skip(seq, execution_id)`` is true for (left undecoded), and the last sequence
    number read (``after_seq`` when none was): reading on from it finds the rest."""
    rows = db.execute(
        "SELECT seq, requester_id, execution_id, kind, payload, create_time FROM outbox "
        "WHERE requester_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (requester_id, after_seq, limit),
    ).fetchall()
    entries = [
        _entry(seq, rid, eid, kind, payload, created)
        for seq, rid, eid, kind, payload, created in rows
        if skip is None or not skip(seq, eid)
    ]
    return entries, (rows[-1][0] if rows else after_seq)


def callbacks_of(db: sqlite3.Connection, requester_id: str, execution_id: str) -> list[OutboxEntry]:
    """The callbacks about one execution queued for ``requester_id``, oldest first (read
    through the requester's index: a node's queue for a requester is short but in outages)."""
    rows = db.execute(
        "SELECT seq, kind, payload, create_time FROM outbox "
        "WHERE requester_id = ? AND execution_id = ? ORDER BY seq",
        (requester_id, execution_id),
    ).fetchall()
    return [
        _entry(seq, requester_id, execution_id, kind, payload, created)
        for seq, kind, payload, created in rows
    ]


def _entry(
    seq: int, requester_id: str, execution_id: str, kind: str, payload: str, created: int
) -> OutboxEntry:
    return OutboxEntry(
        seq=seq,
        requester_id=requester_id,
        execution_id=execution_id,
        message=decode_callback(kind, payload),
        create_time=created,
    )


def unsettled_ids(db: sqlite3.Connection, requester_id: str | None) -> list[str]:
    """Executions not terminal, and those with a callback still queued (of ``requester_id``
    only, unless None)."""
    marks = ",".join("?" * len(TERMINAL))
    where = " AND requester_id = ?" if requester_id is not None else ""
    args: list[str] = [*TERMINAL, *([requester_id] if requester_id is not None else [])]
    rows = db.execute(
        f"SELECT id FROM executions WHERE state NOT IN ({marks}){where} "
        f"UNION SELECT execution_id FROM outbox WHERE 1 = 1{where} ORDER BY 1",
        [*args, *([requester_id] if requester_id is not None else [])],
    ).fetchall()
    return [str(row[0]) for row in rows]


def callback_requesters(db: sqlite3.Connection) -> list[str]:
    """Requesters with callbacks waiting."""
    rows = db.execute("SELECT DISTINCT requester_id FROM outbox").fetchall()
    return [row[0] for row in rows]


def delete_callbacks(db: sqlite3.Connection, seqs: Collection[int]) -> None:
    """Forget delivered callbacks."""
    db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])
