"""Retention: terminal jobs older than a configured age are deleted from the requester's
store, with their executions, history and evaluations.

It runs off the hot path: every ``interval`` seconds it deletes in small batches (one short
transaction each), yielding to the event loop between them, so a backlog of thousands of
expired jobs never stalls request handling; then it gives a few free pages back to the file
system. At steady state the database file stops growing: what is deleted is reused or
returned.
"""

from __future__ import annotations

import asyncio
import logging

from bacalhau.models import now_ns
from bacalhau.orchestrator._store import JobStore

log = logging.getLogger(__name__)

#: Default age after which a terminal job is deleted (Bacalhau keeps a week too).
DEFAULT_JOB_RETENTION = 7 * 24 * 3600.0
#: Jobs deleted per transaction.
BATCH = 100
#: Free pages returned to the file system per sweep (4 KB each).
VACUUM_PAGES = 256


class JobRetention:
    """Deletes expired terminal jobs from a :class:`JobStore`, in the background."""

    def __init__(
        self,
        store: JobStore,
        *,
        max_age: float = DEFAULT_JOB_RETENTION,
        interval: float = 60.0,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._interval = interval
        self._batch = batch

    async def sweep(self, *, now: int | None = None) -> int:
        """Delete every terminal job last changed more than ``max_age`` ago; returns how
        many. Yields to the event loop between batches."""
        if self._max_age <= 0:
            return 0
        before = (now if now is not None else now_ns()) - int(self._max_age * 1e9)
        total = 0
        while True:
            ids = self._store.delete_terminal_jobs(modified_before=before, limit=self._batch)
            total += len(ids)
            if len(ids) < self._batch:
                break
            await asyncio.sleep(0)
        if total:
            log.info("retention: deleted %d terminal jobs older than %.0fs", total, self._max_age)
            self._store.vacuum_step(VACUUM_PAGES)
        return total

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(self._interval)
