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

A requester that allows it gets a pre-approved execution's callbacks in the answer to its ask
instead (:meth:`CallbackOutbox.take_answer`): no call of the node's own, one round trip per
short execution. While the ask's answer waits for them they are held back from the worker;
once answered they stay queued until the requester acknowledges them in a later ask
(:meth:`CallbackOutbox.applied`), and one still unacknowledged after :data:`ANSWER_GRACE` is
sent again the usual way (a requester applies a repeated callback as a no-op). So an answer
lost on the wire, or a requester that stopped before applying it, loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from types import TracebackType

from bacalhau.compute._callbacks import OrchestratorCallbacks
from bacalhau.compute._store import ExecutionStore, OutboxEntry
from bacalhau.errors import BacalhauError, InternalError
from bacalhau.models import AskAnswer, BidResult, LocalExecutionState

_log = logging.getLogger(__name__)
#: Failed deliveries of one callback before each further one is a warning.
_WARN_AFTER = 3

#: The most callbacks read for one call (the transport may send fewer: a byte budget).
BATCH_LIMIT = 256
#: How long a running execution's bid answer waits for its run result by default (seconds).
DEFAULT_LINGER = 0.005
#: How long answered callbacks wait for the requester's acknowledgement before they are sent
#: again by a call of their own (seconds): acknowledgements ride on the next ask to the node.
ANSWER_GRACE = 2.0
#: How long acknowledged callbacks wait to be deleted, so that the acknowledgements of many
#: asks share one write (seconds); meanwhile they are only forgotten in memory.
ACK_FLUSH = 0.05
#: Local states of an execution this node has accepted and not yet finished.
_UNDER_WAY = frozenset(
    {LocalExecutionState.BID_ACCEPTED, LocalExecutionState.RUNNING, LocalExecutionState.PUBLISHING}
)


def _refused_for_good(err: BacalhauError) -> bool:
    """Whether the requester refused a callback for a reason that retrying cannot change (an
    execution it does not know, a transition it refuses). An internal error is not that: the
    requester broke while taking it (a store closing as it stops, a bug), and the result
    must not be dropped for it; it is retried like an unreachable requester."""
    return not err.retryable and err.code != InternalError.code


class CallbackOutbox:
    """Sends the store's queued callbacks through ``callbacks``; an async context manager.

    Failures that may pass (unreachable requester, timeouts, retryable errors, the
    requester's internal errors) are retried with exponential backoff for ``retry_for``
    seconds after the callback was queued; another non-retryable
    :class:`~bacalhau.errors.BacalhauError` means the requester answered and refused, so
    retrying would not help: it is logged and dropped. Each callback of a batch
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
        answer_grace: float = ANSWER_GRACE,
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
        #: Set by :meth:`retry_now`: the requester is reachable again, end the backoff.
        self._back: dict[str, asyncio.Event] = {}
        self._attempts: dict[int, int] = {}
        #: Callbacks that failed to go: (monotonic time, age in ns) at their first miss here.
        self._missed_since: dict[int, tuple[float, int]] = {}
        self._answer_grace = answer_grace
        #: Executions whose callbacks an ask's answer is waiting for: the workers leave them.
        self._held: set[str] = set()
        #: Callbacks an answer carried, not yet acknowledged: seq -> (requester, loop time
        #: after which they are sent again by a call, execution).
        self._answered: dict[int, tuple[str, float, str]] = {}
        #: The same, by execution: what a later callback of that execution must not overtake.
        self._answered_of: dict[str, set[int]] = {}
        #: Of those, the executions whose answer carried their outcome (nothing follows it).
        self._answered_outcome: set[str] = set()
        #: Executions with a callback held back behind an answered one (see ``_skipped``).
        self._blocked: set[str] = set()
        #: Acknowledged callbacks not deleted yet (one write for many asks' acknowledgements,
        #: off the ask's path): every reader of the queue leaves them out.
        self._acked: set[int] = set()
        self._ack_timer: asyncio.TimerHandle | None = None
        #: Per requester, the timer that sends answered callbacks nobody acknowledged.
        self._resend_timers: dict[str, asyncio.TimerHandle] = {}
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Begin delivering, including what a previous run of the node left queued."""
        self._started = True
        for requester_id in self._store.callback_requesters():
            self.kick(requester_id)

    def kick(self, requester_id: str, execution_id: str = "") -> None:
        """Deliver what is queued for ``requester_id`` (call after queueing a callback; with
        ``execution_id``, a callback of that execution: nothing to do while an ask's answer
        waits for it)."""
        if not self._started or self._closed or execution_id in self._held:
            return
        if execution_id in self._answered_outcome:
            # Its outcome, the last callback an execution queues, rode on an answer: nothing
            # of it is new (the kick of its run's end, which the answer overtook).
            return
        if execution_id in self._answered_of:
            # A new callback of an execution whose earlier ones an answer carried: those go
            # again first, in the same call, so the requester never applies it before them
            # (the answer may not have been applied yet; a repeat is a no-op).
            for seq in self._answered_of[execution_id]:
                rid, _, eid = self._answered[seq]
                self._answered[seq] = (rid, 0.0, eid)
        if requester_id in self._workers:
            self._wake[requester_id].set()
            return
        self._wake[requester_id] = asyncio.Event()
        self._workers[requester_id] = asyncio.create_task(
            self._drain(requester_id), name=f"callbacks-to-{requester_id}"
        )

    def retry_now(self, requester_id: str) -> None:
        """``requester_id`` is reachable again (membership saw it come back, or restart):
        what waits for it goes now, not at the end of a backoff that grew while it was
        away (up to ``max_backoff``). A result that finished while a partition cut this
        node off then reaches the requester while its job may still need it."""
        back = self._back.get(requester_id)
        if back is not None:
            back.set()
        else:
            self.kick(requester_id)

    # -- callbacks in the answer to an ask -------------------------------------------------

    def hold(self, execution_id: str, *, new: bool = False) -> None:
        """An ask's answer waits for this execution's callbacks: the workers leave them.
        ``new``: the store holds no such execution yet (the caller just looked), so none is
        queued, and the answer takes those to come from memory (see ``note_callbacks``)."""
        self._held.add(execution_id)
        if new:
            self._store.note_callbacks(execution_id)

    def release(self, requester_id: str, execution_id: str, *, taken: bool = False) -> None:
        """The answer is on its way. Unless it ``taken`` what was queued (nothing can have
        been queued since), what it left goes the usual way."""
        self._held.discard(execution_id)
        self._store.forget_noted(execution_id)
        if not taken:
            self.kick(requester_id)

    def take_answer(self, requester_id: str, execution_id: str) -> AskAnswer | None:
        """The callbacks queued about ``execution_id`` for ``requester_id``, for the answer
        to its ask (None: none yet). They stay queued until :meth:`applied`, or are sent
        again after the grace."""
        queued = self._store.noted_callbacks(requester_id, execution_id)
        if queued is None:
            queued = self._store.callbacks_of(requester_id, execution_id)
        entries = [e for e in queued if e.seq not in self._answered and e.seq not in self._acked]
        if not entries:
            return None
        loop = asyncio.get_running_loop()
        due = loop.time() + self._answer_grace
        for entry in entries:
            self._answered[entry.seq] = (requester_id, due, execution_id)
        self._answered_of.setdefault(execution_id, set()).update(e.seq for e in entries)
        if any(not isinstance(e.message, BidResult) for e in entries):
            self._answered_outcome.add(execution_id)
        if requester_id not in self._resend_timers:
            self._resend_timers[requester_id] = loop.call_later(
                self._answer_grace, self._resend_due, requester_id
            )
        return AskAnswer(callbacks=[e.message for e in entries], seqs=[e.seq for e in entries])

    def applied(self, requester_id: str, seqs: Collection[int]) -> None:
        """``requester_id`` applied these answered callbacks: forget them. Sequence numbers
        this node did not answer that requester with are ignored."""
        done = [s for s in seqs if s in self._answered and self._answered[s][0] == requester_id]
        if not done:
            return
        waited_behind = not self._blocked.isdisjoint(self._answered[s][2] for s in done)
        self._forget(done)
        self._acked.update(done)
        if self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_FLUSH, self._delete_acked)
        if waited_behind:
            self.kick(requester_id)  # what waited behind them may go now

    def _delete_acked(self) -> None:
        """Delete the acknowledged callbacks in one write."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self._acked:
            acked, self._acked = self._acked, set()
            self._store.delete_callbacks(sorted(acked))

    def _resend_due(self, requester_id: str) -> None:
        """The grace of some answered callbacks ended: send the unacknowledged ones (and
        wait for the next ones' grace)."""
        self._resend_timers.pop(requester_id, None)
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        later = [
            due for rid, due, _ in self._answered.values() if rid == requester_id and due > now
        ]
        if later:
            self._resend_timers[requester_id] = loop.call_at(
                min(later), self._resend_due, requester_id
            )
        self.kick(requester_id)

    def _skipped(self, seq: int, execution_id: str) -> bool:
        """Left out of a worker's batch: held for an answer, answered and in its grace, or
        queued after such an answered callback of its execution (it would overtake it)."""
        if execution_id in self._held or seq in self._acked:
            return True
        now = asyncio.get_running_loop().time()
        answered = self._answered.get(seq)
        if answered is not None:
            return answered[1] > now
        if any(self._answered[s][1] > now for s in self._answered_of.get(execution_id, ())):
            self._blocked.add(execution_id)
            return True
        return False

    def _sendable(self, requester_id: str, limit: int, after_seq: int = 0) -> list[OutboxEntry]:
        """Up to ``limit`` queued callbacks past ``after_seq`` that a worker may send."""
        entries: list[OutboxEntry] = []
        while len(entries) < limit:
            page, last = self._store.pending_page(
                requester_id, limit=limit - len(entries), after_seq=after_seq, skip=self._skipped
            )
            entries += page
            if last == after_seq:
                break  # read to the end
            after_seq = last
        return entries

    def pending_count(self) -> int:
        """How many requesters have callbacks in flight (for tests and status)."""
        return len(self._workers)

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every worker to run dry; True if they did."""
        self._delete_acked()
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
        self._delete_acked()
        for timer in self._resend_timers.values():
            timer.cancel()
        self._resend_timers.clear()
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
        back = self._back[requester_id] = asyncio.Event()
        try:
            while True:
                wake.clear()  # before reading: a callback queued after the read wakes a linger
                entries = self._sendable(requester_id, BATCH_LIMIT)
                if not entries:
                    # No await between the empty read and leaving: a callback queued after
                    # this point finds no worker and starts a new one.
                    self._workers.pop(requester_id, None)
                    self._wake.pop(requester_id, None)
                    self._back.pop(requester_id, None)
                    return
                if self._linger > 0 and self._awaits_result(entries):
                    entries = await self._lingered(requester_id, wake, entries)
                if await self._send(requester_id, entries):
                    backoff = self._initial_backoff
                    continue
                back.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(back.wait(), backoff)
                backoff = self._initial_backoff if back.is_set() else backoff * 2
                backoff = min(backoff, self._max_backoff)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store itself failed: log loudly, a later kick retries
            _log.exception("delivering callbacks to %s stopped", requester_id)
            self._workers.pop(requester_id, None)
            self._wake.pop(requester_id, None)
            self._back.pop(requester_id, None)

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
            entries += self._sendable(
                requester_id, BATCH_LIMIT - len(entries), after_seq=entries[-1].seq
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
            if _refused_for_good(err):
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
                elif isinstance(outcome, BacalhauError) and _refused_for_good(outcome):
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
        # How long it has been tried: its age by the wall clock at its first miss in this
        # process, then by the monotonic clock, so that a wall clock stepped forward while the
        # requester is out of reach does not make the node give up on a result early.
        mono, age = self._missed_since.setdefault(
            entry.seq, (time.monotonic(), max(0, time.time_ns() - entry.create_time))
        )
        if age + (time.monotonic() - mono) * 1e9 > self._retry_for_ns:
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
        # A first miss is routine (a node starting before it has reached its requester, a
        # requester restarting): a warning only once it keeps failing.
        _log.log(
            logging.INFO if attempts < _WARN_AFTER else logging.WARNING,
            "could not deliver %s for execution %s to %s (attempt %d): %s; will retry",
            kind,
            entry.execution_id,
            entry.requester_id,
            attempts,
            why,
        )
        return False

    def _settle(self, entries: list[OutboxEntry]) -> None:
        if entries:
            self._settle_seqs([entry.seq for entry in entries])

    def _settle_seqs(self, seqs: list[int]) -> None:
        self._forget(seqs)
        self._store.delete_callbacks(seqs)

    def _forget(self, seqs: list[int]) -> None:
        """Drop what memory holds about these callbacks (their rows are the caller's)."""
        for seq in seqs:
            self._attempts.pop(seq, None)
            self._missed_since.pop(seq, None)
            answered = self._answered.pop(seq, None)
            if answered is not None:
                of = self._answered_of[answered[2]]
                of.discard(seq)
                if not of:
                    del self._answered_of[answered[2]]
                    self._answered_outcome.discard(answered[2])
                    self._blocked.discard(answered[2])  # nothing left for it to wait behind
