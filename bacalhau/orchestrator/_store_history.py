"""The job store's history: items appended per job with their sequence numbers (each job's
last one kept in memory), each job's log kept in memory as committed (history pages and
long-polls read it instead of SQL), and the long-poll waiters woken when a transaction that
wrote a job's history commits."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from contextlib import suppress

from bacalhau._json import dumps_text
from bacalhau.models import JobHistory
from bacalhau.orchestrator._rows import history_from_row, history_to_row
from bacalhau.orchestrator._store_transactions import StoreTransactions

#: Jobs whose history is kept in memory (decoded, as committed), most recently used last.
_HISTORY_CACHE = 1024
#: Jobs whose last sequence number is kept in memory (a job's items are numbered from it).
_SEQ_CACHE = 4096


class JobHistoryLog(StoreTransactions):
    """History items of jobs: appended in the caller's transaction, read from memory."""

    #: Waiters for history changes, per job (long-poll support).
    _changed: dict[str, asyncio.Event]
    #: Job ID -> its history as committed, for jobs read recently (history pages and
    #: long-polls read this instead of SQL; a job's log is loaded once, then appended).
    _logs: OrderedDict[str, list[JobHistory]]
    #: Job ID -> its last history sequence number as written (in the open transaction
    #: too: undone with it), so that appending an item reads no SQL.
    _seqs: OrderedDict[str, int]

    def add_history(self, item: JobHistory) -> JobHistory:
        """Append a history item; assigns the next SeqNum of its job.

        The row is written when the transaction commits, with the transaction's other items
        in one statement (see :meth:`_write_history`); until then the item is pending, and
        a nested block that rolls back drops it from the pending list: it needs no
        savepoint of its own."""
        with self._write_at_commit():
            last = self._seqs.get(item.job_id)
            if last is None:
                row = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM history WHERE job_id = ?", (item.job_id,)
                ).fetchone()
                last = int(row[0])
            item.seq_num = last + 1
            if not item.event.timestamp:
                item.event.timestamp = item.time
            self._cache_recent(self._seqs, item.job_id, item.seq_num, _SEQ_CACHE)
            self._pending_notify.add(item.job_id)
            self._pending_history.append(item)
        return item

    def _write_history(self) -> None:
        """Write the open transaction's pending history items (just before it commits)."""
        if self._pending_history:
            self._db.executemany(
                "INSERT INTO history (job_id, seq, data) VALUES (?, ?, ?)",
                [
                    (item.job_id, item.seq_num, dumps_text(history_to_row(item)))
                    for item in self._pending_history
                ],
            )

    def _new_history(self, job_id: str) -> None:
        """A job was just created (in the open transaction): its history starts at 1."""
        if job_id not in self._seqs:
            self._cache_recent(self._seqs, job_id, 0, _SEQ_CACHE)

    def history_of(self, job_id: str, *, after_seq: int = 0) -> list[JobHistory]:
        """The job's history after ``after_seq``, from its in-memory log (read from SQL the
        first time, then appended as writes commit). Items are shared: do not change them."""
        log = self._logs.get(job_id)
        if log is None:
            rows = self._db.execute(
                "SELECT seq, data FROM history WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            log = [history_from_row(job_id, int(r[0]), json.loads(r[1])) for r in rows]
            if self._depth:
                # Inside a transaction: with what it has added so far (written at its
                # commit), and not kept (it may still roll back).
                log += [h for h in self._pending_history if h.job_id == job_id]
                return [h for h in log if h.seq_num > after_seq]
            self._logs[job_id] = log
            if len(self._logs) > _HISTORY_CACHE:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(job_id)
        return [h for h in log if h.seq_num > after_seq]

    def last_seq(self, job_id: str) -> int:
        log = self._logs.get(job_id)
        if log is not None:
            return log[-1].seq_num if log else 0
        row = self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM history WHERE job_id = ?", (job_id,)
        ).fetchone()
        return int(row[0])

    async def wait_for_history(self, job_id: str, *, after_seq: int, timeout: float) -> None:
        """Wait until the job has a history item past ``after_seq`` (or the timeout)."""
        if self.last_seq(job_id) > after_seq:
            return
        ev = self._changed.get(job_id)
        if ev is None:
            ev = self._changed[job_id] = asyncio.Event()
        with suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout)

    def _flush_history(self) -> None:
        for item in self._pending_history:
            log = self._logs.get(item.job_id)
            if log is None and item.seq_num == 1:
                # A new job's first item is its whole history so far: start its log here
                # rather than have its first reader (the client's wait) load it from SQL.
                log = self._logs[item.job_id] = []
                if len(self._logs) > _HISTORY_CACHE:
                    self._logs.popitem(last=False)
            if log is not None and (not log or log[-1].seq_num < item.seq_num):
                log.append(item)
        self._pending_history.clear()

    def _flush_notify(self) -> None:
        for job_id in self._pending_notify:
            ev = self._changed.pop(job_id, None)
            if ev is not None:
                ev.set()
        self._pending_notify.clear()
