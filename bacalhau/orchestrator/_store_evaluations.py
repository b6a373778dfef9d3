"""The job store's evaluations (what the evaluation loop works through) and idempotency
tokens (a resubmitted job answered with the job and evaluation it created the first time)."""

from __future__ import annotations

import json

from bacalhau.models import Evaluation, EvaluationStatus
from bacalhau.orchestrator._rows import eval_from_row, eval_to_row
from bacalhau.orchestrator._store_transactions import StoreTransactions


class EvaluationRecords(StoreTransactions):
    """Evaluations and idempotency tokens."""

    def create_evaluation(self, ev: Evaluation) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO evaluations (id, job_id, status, wait_until, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (ev.id, ev.job_id, ev.status, ev.wait_until, json.dumps(eval_to_row(ev))),
            )

    def set_evaluation_status(self, eval_id: str, status: str) -> None:
        with self._write():
            self._db.execute("UPDATE evaluations SET status = ? WHERE id = ?", (status, eval_id))

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
                (token, job_id, eval_id, json.dumps(warnings)),
            )
