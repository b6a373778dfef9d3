"""The job store's retention: deleting terminal jobs past their time with everything kept for
them, and giving the freed space back to the file system in small steps."""

from __future__ import annotations

from bacalhau.models import JobStateType
from bacalhau.orchestrator._store_jobs import JobRecords


class StoreRetention(JobRecords):
    """Deletion of old terminal jobs and incremental vacuum."""

    def delete_terminal_jobs(self, *, modified_before: int, limit: int) -> list[str]:
        """Delete up to ``limit`` terminal jobs last changed before ``modified_before`` (Unix
        ns), with their specs, executions, history, evaluations and idempotency tokens, in
        one transaction. Returns their IDs (fewer than ``limit``: nothing more is due)."""
        terminal = [int(s) for s in JobStateType if s.is_terminal()]
        marks = ",".join("?" for _ in terminal)
        with self.transaction():
            ids = [
                str(r[0])
                for r in self._db.execute(
                    f"SELECT id FROM jobs WHERE state IN ({marks}) AND modify_time < ?"
                    " ORDER BY modify_time LIMIT ?",
                    [*terminal, modified_before, limit],
                )
            ]
            if not ids:
                return []
            which = ",".join("?" for _ in ids)
            for table, column in (
                ("job_specs", "job_id"),
                ("executions", "job_id"),
                ("history", "job_id"),
                ("evaluations", "job_id"),
                ("idempotency", "job_id"),
                ("jobs", "id"),
            ):
                self._db.execute(f"DELETE FROM {table} WHERE {column} IN ({which})", ids)
            self._db.execute(
                "DELETE FROM blobs WHERE hash NOT IN"
                " (SELECT blob FROM job_specs WHERE blob IS NOT NULL)"
            )
        gone = set(ids)
        for job_id in ids:
            self._logs.pop(job_id, None)
        self._specs.discard_jobs(gone)
        return ids

    def vacuum_step(self, pages: int) -> None:
        """Give up to ``pages`` free pages back to the file system (incremental vacuum)."""
        self._db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
