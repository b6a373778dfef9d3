"""Delivery of the queued callbacks: in order per requester, in batches, retried with backoff.

A callback that never arrives is a job stuck forever at the requester (Bacalhau 1.5 only logs
a failed send), so callbacks are written to the store first and sent from there: a requester
that is down, restarting or briefly unreachable receives them once it is back, even if this
node restarted in between. Each requester has its own worker so one unreachable requester
does not hold up the others; within a requester, order is kept (a bid answer always arrives
before the run result).

Everything queued for a requester travels in one call (up to :data:`BATCH_LIMIT`), so under
load the callbacks of many executions share a call and one commit at the requester. A short
linger lets a fast execution's bid answer wait a few milliseconds for its run result, so that
both travel together; a long execution's bid answer leaves when the linger ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType

from bacalhau.compute._callbacks import OrchestratorCallbacks
from bacalhau.compute._store import ExecutionStore, OutboxEntry
from bacalhau.errors import BacalhauError
from bacalhau.models import BidResult, LocalExecutionState

_log = logging.getLogger(__name__)

#: The most callbacks read for one call (the transport may send fewer: a byte budget).
BATCH_LIMIT = 256
#: How long a running execution's bid answer waits for its run result by default (seconds).
DEFAULT_LINGER = 0.005
#: Local states of an execution this node has accepted and not yet finished.
_UNDER_WAY = frozenset(
    {LocalExecutionState.BID_ACCEPTED, LocalExecutionState.RUNNING, LocalExecutionState.PUBLISHING}
)


class CallbackOutbox:
    """Sends the store's queued callbacks through ``callbacks``; an async context manager.

    Failures that may pass (unreachable requester, timeouts, retryable errors) are retried
    with exponential backoff for ``retry_for`` seconds after the callback was queued; a
    non-retryable :class:`~bacalhau.errors.BacalhauError` means the requester answered and
    refused, so retrying would not help: it is logged and dropped. Each callback of a batch
    has its own outcome; one that fails and may pass holds back those queued after it.

    ``linger`` (seconds, 0: off): when the queue holds the accepted bid answer of an
    execution under way here whose result is not queued yet, the call waits up to this long
    for more callbacks (every :meth:`kick` wakes it), so the result can travel with it.
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
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._retry_for_ns = int(retry_for * 1e9)
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._send_timeout = send_timeout
        self._linger = linger
        self._workers: dict[str, asyncio.Task[None]] = {}
        #: Set by :meth:`kick` while a requester's worker runs: something new was queued.
        self._wake: dict[str, asyncio.Event] = {}
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
        if not self._started or self._closed:
            return
        if requester_id in self._workers:
            self._wake[requester_id].set()
            return
        self._wake[requester_id] = asyncio.Event()
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
        self._wake.clear()

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
        wake = self._wake[requester_id]
        try:
            while True:
                wake.clear()  # before reading: a callback queued after the read wakes a linger
                entries = self._store.pending_callbacks(requester_id, limit=BATCH_LIMIT)
                if not entries:
                    # No await between the empty read and leaving: a callback queued after
                    # this point finds no worker and starts a new one.
                    self._workers.pop(requester_id, None)
                    self._wake.pop(requester_id, None)
                    return
                if self._linger > 0 and self._awaits_result(entries):
                    entries = await self._lingered(requester_id, wake, entries)
                if await self._send(requester_id, entries):
                    backoff = self._initial_backoff
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store itself failed: log loudly, a later kick retries
            _log.exception("delivering callbacks to %s stopped", requester_id)
            self._workers.pop(requester_id, None)
            self._wake.pop(requester_id, None)

    def _awaits_result(self, entries: list[OutboxEntry]) -> bool:
        """Whether the queue holds the accepted bid answer of an execution under way here
        whose result (or failure) is not queued yet."""
        followed = {e.execution_id for e in entries if not isinstance(e.message, BidResult)}
        return any(
            isinstance(entry.message, BidResult)
            and entry.message.accepted
            and entry.execution_id not in followed
            and self._store.state(entry.execution_id) in _UNDER_WAY
            for entry in entries
        )

    async def _lingered(
        self, requester_id: str, wake: asyncio.Event, entries: list[OutboxEntry]
    ) -> list[OutboxEntry]:
        """``entries`` and what was queued after them, once the results they wait for are
        in, the batch is full, or the linger is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger
        while len(entries) < BATCH_LIMIT:
            try:
                async with asyncio.timeout_at(deadline):
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            # Only the newly queued ones are read: the queue's head is already in hand.
            entries += self._store.pending_callbacks(
                requester_id, limit=BATCH_LIMIT - len(entries), after_seq=entries[-1].seq
            )
            if loop.time() >= deadline or not self._awaits_result(entries):
                break
        return entries

    async def _send(self, requester_id: str, entries: list[OutboxEntry]) -> bool:
        """Send a batch and settle what it settled (delivered, or refused: dropped). True to
        go on at once, False to retry after a backoff (the first unsettled entry failed)."""
        try:
            async with asyncio.timeout(self._send_timeout):
                outcomes = await self._callbacks.deliver_callbacks(
                    requester_id, [entry.message for entry in entries]
                )
        except BacalhauError as err:
            if not err.retryable:
                # Refused as a whole: the first is dropped, the next call tries the others.
                self._refused(entries[0], err)
                self._settle([entries[0]])
                return True
            return self._failed(entries[0], f"{err.message} [{err.code}]")
        except Exception as err:  # connection errors, timeouts, anything transport raised
            return self._failed(entries[0], f"{type(err).__name__}: {err}")
        if not outcomes:
            return self._failed(entries[0], "the requester answered for none of the callbacks")
        settled: list[OutboxEntry] = []
        try:
            for entry, outcome in zip(entries, outcomes, strict=False):
                if outcome is None:
                    if self._attempts.get(entry.seq):
                        _log.info(
                            "delivered %s for execution %s to %s after retrying",
                            type(entry.message).__name__,
                            entry.execution_id,
                            requester_id,
                        )
                    settled.append(entry)
                elif isinstance(outcome, BacalhauError) and not outcome.retryable:
                    self._refused(entry, outcome)
                    settled.append(entry)
                else:
                    # It may pass: it and everything after it wait, to keep their order.
                    why = (
                        f"{outcome.message} [{outcome.code}]"
                        if isinstance(outcome, BacalhauError)
                        else f"{type(outcome).__name__}: {outcome}"
                    )
                    return self._failed(entry, why)
            return True
        finally:
            self._settle(settled)

    def _refused(self, entry: OutboxEntry, err: BacalhauError) -> None:
        _log.error(
            "requester %s refused %s for execution %s: %s [%s]; dropping it",
            entry.requester_id,
            type(entry.message).__name__,
            entry.execution_id,
            err.message,
            err.code,
        )

    def _failed(self, entry: OutboxEntry, why: str) -> bool:
        kind = type(entry.message).__name__
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
            self._settle([entry])
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

    def _settle(self, entries: list[OutboxEntry]) -> None:
        if not entries:
            return
        for entry in entries:
            self._attempts.pop(entry.seq, None)
        self._store.delete_callbacks([entry.seq for entry in entries])
