"""Delivery of the queued callbacks: in order per requester, retried with backoff.

A callback that never arrives is a job stuck forever at the requester (Bacalhau 1.5 only logs
a failed send), so callbacks are written to the store first and sent from there: a requester
that is down, restarting or briefly unreachable receives them once it is back, even if this
node restarted in between. Each requester has its own worker so one unreachable requester
does not hold up the others; within a requester, order is kept (a bid answer always arrives
before the run result).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType

from bacalhau.compute._callbacks import OrchestratorCallbacks, deliver
from bacalhau.compute._store import ExecutionStore, OutboxEntry
from bacalhau.errors import BacalhauError

_log = logging.getLogger(__name__)


class CallbackOutbox:
    """Sends the store's queued callbacks through ``callbacks``; an async context manager.

    Failures that may pass (unreachable requester, timeouts, retryable errors) are retried
    with exponential backoff for ``retry_for`` seconds after the callback was queued; a
    non-retryable :class:`~bacalhau.errors.BacalhauError` means the requester answered and
    refused, so retrying would not help: it is logged and dropped.
    """

    def __init__(
        self,
        *,
        store: ExecutionStore,
        callbacks: OrchestratorCallbacks,
        retry_for: float = 3600.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 30.0,
        send_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._retry_for_ns = int(retry_for * 1e9)
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._send_timeout = send_timeout
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._attempts: dict[int, int] = {}
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Begin delivering, including what a previous run of the node left queued."""
        self._started = True
        for requester_id in self._store.callback_requesters():
            self.kick(requester_id)

    def kick(self, requester_id: str) -> None:
        """Deliver what is queued for ``requester_id`` (call after queueing a callback)."""
        if not self._started or self._closed or requester_id in self._workers:
            return
        self._workers[requester_id] = asyncio.create_task(
            self._drain(requester_id), name=f"callbacks-to-{requester_id}"
        )

    def pending_count(self) -> int:
        """How many requesters have callbacks in flight (for tests and status)."""
        return len(self._workers)

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every worker to run dry; True if they did."""
        deadline = time.monotonic() + timeout
        while self._workers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._workers.values()), timeout=remaining)
        return True

    async def close(self, *, flush_timeout: float = 2.0) -> None:
        """Give queued callbacks a moment to go out, then stop; the rest stays in the store."""
        if self._closed:
            return
        await self.flush(flush_timeout)
        self._closed = True
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    async def __aenter__(self) -> CallbackOutbox:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _drain(self, requester_id: str) -> None:
        backoff = self._initial_backoff
        try:
            while True:
                entries = self._store.pending_callbacks(requester_id)
                if not entries:
                    # No await between the empty read and leaving: a callback queued after
                    # this point finds no worker and starts a new one.
                    self._workers.pop(requester_id, None)
                    return
                for entry in entries:
                    if await self._send(entry):
                        backoff = self._initial_backoff
                        continue
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    break  # read again: the failed entry is retried first
        except asyncio.CancelledError:
            raise
        except Exception:  # the store itself failed: log loudly, a later kick retries
            _log.exception("delivering callbacks to %s stopped", requester_id)
            self._workers.pop(requester_id, None)

    async def _send(self, entry: OutboxEntry) -> bool:
        """True when the entry is settled (delivered or given up), False to retry it later."""
        kind = type(entry.message).__name__
        try:
            async with asyncio.timeout(self._send_timeout):
                await deliver(self._callbacks, entry.requester_id, entry.message)
        except BacalhauError as err:
            if not err.retryable:
                _log.error(
                    "requester %s refused %s for execution %s: %s [%s]; dropping it",
                    entry.requester_id,
                    kind,
                    entry.execution_id,
                    err.message,
                    err.code,
                )
                self._settle(entry)
                return True
            return self._failed(entry, kind, f"{err.message} [{err.code}]")
        except Exception as err:  # connection errors, timeouts, anything transport raised
            return self._failed(entry, kind, f"{type(err).__name__}: {err}")
        retried = self._attempts.get(entry.seq, 0)
        self._settle(entry)
        if retried:
            _log.info(
                "delivered %s for execution %s to %s after retrying",
                kind,
                entry.execution_id,
                entry.requester_id,
            )
        return True

    def _failed(self, entry: OutboxEntry, kind: str, why: str) -> bool:
        attempts = self._attempts.get(entry.seq, 0) + 1
        self._attempts[entry.seq] = attempts
        if time.time_ns() - entry.create_time > self._retry_for_ns:
            _log.error(
                "giving up on %s for execution %s to %s after %d attempts: %s",
                kind,
                entry.execution_id,
                entry.requester_id,
                attempts,
                why,
            )
            self._settle(entry)
            return True
        _log.warning(
            "could not deliver %s for execution %s to %s (attempt %d): %s; will retry",
            kind,
            entry.execution_id,
            entry.requester_id,
            attempts,
            why,
        )
        return False

    def _settle(self, entry: OutboxEntry) -> None:
        self._attempts.pop(entry.seq, None)
        self._store.delete_callback(entry.seq)
