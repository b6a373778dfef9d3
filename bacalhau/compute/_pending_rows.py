"""State changes of executions that may wait: kept in memory and written once.

A change into Running or Publishing (see :meth:`ExecutionStore.transition`) need not be
durable at once: it is kept here, as the execution's latest record with the revision its row
still has, and written by the next transaction of the store (or at the end of the event-loop
turn). A change that follows in the same turn takes its place: a run that ends within its turn
writes its row once, from the revision it had to its final state.
"""

from __future__ import annotations

import sqlite3

from bacalhau.compute._store_rows import LocalExecution, dump_output, dump_spec
from bacalhau.errors import RevisionConflict

__all__ = ["UPDATE_ROW", "PendingRows", "row_update"]

#: A state change of an execution's row: a compare-and-set on the revision it had.
UPDATE_ROW = (
    "UPDATE executions SET state = ?, revision = ?, message = ?, "
    "published_result = ?, run_output = ?, modify_time = ? "
    "WHERE id = ? AND revision = ?"
)


def row_update(record: LocalExecution, base: int) -> tuple[object, ...]:
    """The parameters of :data:`UPDATE_ROW` writing ``record`` over the row at revision
    ``base``."""
    return (
        record.state.value,
        record.revision,
        record.message,
        dump_spec(record.published_result),
        dump_output(record.run_output),
        record.modify_time,
        record.id,
        base,
    )


class PendingRows:
    """Execution ID -> (the revision its row has, its latest record), for changes not yet
    written."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, LocalExecution]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def latest(self, execution_id: str) -> LocalExecution | None:
        """The execution's record with its pending change (None: none is pending)."""
        pending = self._rows.get(execution_id)
        return pending[1] if pending is not None else None

    def base(self, record: LocalExecution) -> int:
        """The revision the row of ``record``'s execution has: that of ``record`` unless a
        change is pending, which ``record`` must then be (RevisionConflict otherwise: it is
        stale)."""
        pending = self._rows.get(record.id)
        if pending is None:
            return record.revision
        if pending[1].revision != record.revision:
            raise RevisionConflict(
                f"execution {record.id} changed concurrently: expected revision "
                f"{record.revision} ({record.state.value}), found {pending[1].revision} "
                f"({pending[1].state.value})",
                component="ExecutionStore",
            )
        return pending[0]

    def put(self, base: int, record: LocalExecution) -> None:
        self._rows[record.id] = (base, record)

    def take(self, execution_id: str) -> tuple[int, LocalExecution] | None:
        """Take the execution's pending change out (a write that replaces it)."""
        return self._rows.pop(execution_id, None)

    def write(self, db: sqlite3.Connection) -> None:
        """Write every pending change (kept until :meth:`clear`: the transaction may yet roll
        back). A row that moved on meanwhile raises RevisionConflict."""
        if not self._rows:
            return
        cursor = db.executemany(
            UPDATE_ROW, [row_update(record, base) for base, record in self._rows.values()]
        )
        if cursor.rowcount != len(self._rows):
            raise RevisionConflict(
                "an execution's row changed under its pending state change",
                component="ExecutionStore",
            )

    def clear(self) -> None:
        self._rows.clear()
