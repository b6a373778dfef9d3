"""The job store's retention: deleting terminal jobs past their time with everything kept for
them, and giving the freed space back to the file system in small steps."""

from __future__ import annotations

from collections import OrderedDict

from bacalhau.models import Execution, JobStateType
from bacalhau.orchestrator._store_jobs import JobRecords


class StoreRetention(JobRecords):
    """Deletion of old terminal jobs and incremental vacuum."""

    # Kept by the executions and evaluations parts of the store (see there).
    _executions: OrderedDict[str, tuple[int, Execution]]
    _open_evaluations: dict[str, str]

    def delete_terminal_jobs(self, *, modified_before: int, limit: int) -> list[str]:
        """Delete up to ``limit`` terminal jobs last changed before ``modified_before`` (Unix
        ns), with their specs, executions, history, evaluations and idempotency tokens, in
        one transaction. Returns their IDs (fewer than ``limit``: nothing more is due)."""
        terminal = [int(s) for s in JobStateType if s.is_terminal()]
        marks = ",".join("?" for _ in terminal)
        with self._atomic():
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
            self._forget_jobs(set(ids))
        return ids

    def _forget_jobs(self, gone: set[str]) -> None:
        """Drop what memory keeps of deleted jobs (in the deleting transaction: a rollback
        puts back what must be exact; the rest is read again from SQL)."""
        for job_id in gone:
            self._logs.pop(job_id, None)
            self._seqs.pop(job_id, None)
            self._job_rows.pop(job_id, None)
            self._job_executions.pop(job_id, None)
        for ex_id in [k for k, (_, ex) in self._executions.items() if ex.job_id in gone]:
            del self._executions[ex_id]
        for ev_id in [k for k, job_id in self._open_evaluations.items() if job_id in gone]:
            self._uncache(self._open_evaluations, ev_id)
        self._specs.discard_jobs(gone)
        self._blobs.clear()  # some may have gone with their last job

    def vacuum_step(self, pages: int) -> None:
        """Give up to ``pages`` free pages back to the file system (incremental vacuum)."""
        self._db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
