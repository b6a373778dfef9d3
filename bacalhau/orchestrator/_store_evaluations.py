"""The job store's evaluations (what the evaluation loop works through) and idempotency
tokens (a resubmitted job answered with the job and evaluation it created the first time)."""

from __future__ import annotations

import json
from dataclasses import replace

from bacalhau._json import dumps_text
from bacalhau.models import Evaluation, EvaluationStatus
from bacalhau.orchestrator._rows import eval_from_row, eval_to_row
from bacalhau.orchestrator._store_transactions import StoreTransactions


class EvaluationRecords(StoreTransactions):
    """Evaluations and idempotency tokens."""

    #: Evaluation ID -> job ID, for every stored evaluation not complete (those the open
    #: transaction creates included: undone with it): marking any other complete changes
    #: no row, so it is not written (a scheduling pass made in place has an evaluation
    #: never stored).
    _open_evaluations: dict[str, str]

    def _load_open_evaluations(self) -> None:
        # Two ranges rather than "!=", so that the status index serves it.
        self._open_evaluations = {
            str(r[0]): str(r[1])
            for r in self._db.execute(
                "SELECT id, job_id FROM evaluations WHERE status < ? OR status > ?",
                (EvaluationStatus.COMPLETE, EvaluationStatus.COMPLETE),
            )
        }

    def create_evaluation(self, ev: Evaluation) -> None:
        """Store a new evaluation: inserted when the transaction commits, with the status it
        has then (one made and completed by the same transaction is one row written)."""
        with self._write_at_commit():
            self._cache(self._new_evaluations, ev.id, replace(ev))
            if ev.status != EvaluationStatus.COMPLETE:
                self._cache(self._open_evaluations, ev.id, ev.job_id)

    def _write_evaluations(self) -> None:
        """Insert the evaluations the open transaction created (just before it commits)."""
        if self._new_evaluations:
            self._db.executemany(
                "INSERT INTO evaluations (id, job_id, status, wait_until, data)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (ev.id, ev.job_id, ev.status, ev.wait_until, dumps_text(eval_to_row(ev)))
                    for ev in self._new_evaluations.values()
                ],
            )

    def set_evaluation_status(self, eval_id: str, status: str) -> None:
        new = self._new_evaluations.get(eval_id)
        if new is not None:
            # Created by the open transaction: changed before it is written.
            self._check_owner()
            self._cache(self._new_evaluations, eval_id, replace(new, status=status))
            if status == EvaluationStatus.COMPLETE:
                self._uncache(self._open_evaluations, eval_id)
            else:
                self._cache(self._open_evaluations, eval_id, new.job_id)
            return
        if status == EvaluationStatus.COMPLETE:
            if eval_id not in self._open_evaluations:
                return  # not stored, or already complete: no row would change
            with self._write():
                self._db.execute(
                    "UPDATE evaluations SET status = ? WHERE id = ?", (status, eval_id)
                )
                self._uncache(self._open_evaluations, eval_id)
            return
        with self._write():
            self._db.execute("UPDATE evaluations SET status = ? WHERE id = ?", (status, eval_id))
            row = self._db.execute(
                "SELECT job_id FROM evaluations WHERE id = ?", (eval_id,)
            ).fetchone()
            if row is not None:
                self._open_evaluations[eval_id] = str(row[0])

    def pending_evaluations(self) -> list[Evaluation]:
        rows = self._db.execute(
            "SELECT data FROM evaluations WHERE status = ? ORDER BY wait_until",
            (EvaluationStatus.PENDING,),
        ).fetchall()
        return [eval_from_row(json.loads(r[0])) for r in rows]

    # -- idempotency -------------------------------------------------------------------

    def idempotent_result(self, token: str) -> tuple[str, str, list[str]] | None:
        row = self._db.execute(
            "SELECT job_id, evaluation_id, warnings FROM idempotency WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), str(row[1]), list(json.loads(row[2]))

    def remember_idempotent(
        self, token: str, job_id: str, eval_id: str, warnings: list[str]
    ) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO idempotency (token, job_id, evaluation_id, warnings)"
                " VALUES (?, ?, ?, ?)",
                (token, job_id, eval_id, dumps_text(warnings)),
            )
