"""Retention on a compute node: finished executions older than a configured age are forgotten,
with their files (results folder and logs, leftover inputs, published copies kept here).

It mirrors the requester's job retention (``orchestrator/_retention.py``, the same default
age): every ``interval`` seconds it forgets expired executions in small batches, one short
store transaction each, removing their files in a worker thread and yielding to the event
loop between batches, so a backlog never stalls the node's bidding and callbacks. An
execution whose final callback has not reached its requester yet is kept until it has.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from bacalhau.compute._store import ExecutionStore
from bacalhau.models import now_ns

_log = logging.getLogger(__name__)

#: Default age after which a finished execution is forgotten (the requester keeps jobs as long).
DEFAULT_EXECUTION_RETENTION = 7 * 24 * 3600.0
#: Executions forgotten per store transaction.
BATCH = 100
#: Free pages of the store returned to the file system per sweep (4 KB each).
VACUUM_PAGES = 256


class ExecutionRetention:
    """Forgets expired finished executions of an :class:`ExecutionStore`, in the background.

    ``paths_of`` names the files and folders that belong to an execution; they are removed
    (whichever exist) once the execution is forgotten, and ``forget`` is told the IDs, for
    what is kept elsewhere (the small archives of the local publisher). ``max_age`` 0 keeps
    everything.
    """

    def __init__(
        self,
        store: ExecutionStore,
        *,
        paths_of: Callable[[str], Iterable[Path]],
        forget: Callable[[list[str]], object] | None = None,
        max_age: float = DEFAULT_EXECUTION_RETENTION,
        interval: float = 60.0,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._paths_of = paths_of
        self._forget = forget
        self._max_age = max_age
        self._interval = interval
        self._batch = batch

    @property
    def max_age(self) -> float:
        return self._max_age

    async def sweep(self, *, now: int | None = None) -> int:
        """Forget every finished execution last changed more than ``max_age`` ago, and its
        files; returns how many. Yields to the event loop between batches."""
        if self._max_age <= 0:
            return 0
        before = (now if now is not None else now_ns()) - int(self._max_age * 1e9)
        total = 0
        while True:
            ids = self._store.prune(finished_before_ns=before, limit=self._batch)
            if ids:
                paths = [path for execution_id in ids for path in self._paths_of(execution_id)]
                await asyncio.to_thread(_remove, paths)
                if self._forget is not None:
                    self._forget(ids)
            total += len(ids)
            if len(ids) < self._batch:
                break
            await asyncio.sleep(0)
        if total:
            _log.info(
                "retention: forgot %d finished executions older than %.0fs", total, self._max_age
            )
            self._store.vacuum_step(VACUUM_PAGES)
        return total

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except Exception:
                _log.exception("compute retention sweep failed")


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as err:
            # The execution is forgotten already: say what stays behind, and carry on.
            _log.warning("retention: cannot remove %s: %s", path, err)
