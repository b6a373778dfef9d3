"""The callback outbox sends what is queued for a requester in batches: in order, one outcome
per callback, and with a short linger that lets a running execution's bid answer wait for
its run result. A real execution store; the requester is the recording one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bacalhau.compute import CallbackOutbox, ExecutionStore, LocalExecution
from bacalhau.errors import ExecutionNotFound, InternalError, Unavailable
from bacalhau.models import (
    BidResult,
    LocalExecutionState,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from tests.compute.jobs import make_execution
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.waiting import eventually

L = LocalExecutionState
REQUESTER = "requester-1"
NODE = "compute-node"
#: Longer than any test: a linger that is not cut short shows as a test that times out.
LONG_LINGER = 60.0


def _bid(record: LocalExecution) -> BidResult:
    return BidResult(record.id, record.job_id, NODE, accepted=True)


def _result(record: LocalExecution) -> RunResult:
    return RunResult(
        record.id, record.job_id, NODE, SpecConfig(type="noop"), RunCommandResult(stdout="hi")
    )


def _bid_for(store: ExecutionStore, state: L = L.BID_ACCEPTED) -> LocalExecution:
    """A new execution in ``state`` whose (accepted) bid answer is queued."""
    execution = make_execution("echo hi")
    record = store.create(execution, requester_id=REQUESTER, state=state)
    store.enqueue_callback(REQUESTER, _bid(record))
    return record


def _complete(store: ExecutionStore, record: LocalExecution) -> None:
    record = store.transition(store.get(record.id), L.RUNNING)
    store.transition(record, L.COMPLETED, callback=_result(record))


async def _turns(count: int = 20) -> None:
    """Let the outbox's worker run as far as it can without waiting on anything."""
    for _ in range(count):
        await asyncio.sleep(0)


@asynccontextmanager
async def outbox(
    tmp_path: Path,
    callbacks: RecordingCallbacks,
    *,
    linger: float = 0.0,
    answer_grace: float = LONG_LINGER,
    retry_for: float = 3600.0,
) -> AsyncIterator[tuple[ExecutionStore, CallbackOutbox]]:
    with ExecutionStore(tmp_path / "compute.db") as store:
        box = CallbackOutbox(
            store=store,
            callbacks=callbacks,
            retry_for=retry_for,
            initial_backoff=0.01,
            max_backoff=0.05,
            linger=linger,
            answer_grace=answer_grace,
        )
        yield store, box
        await box.close(flush_timeout=0)


async def test_what_is_queued_goes_in_one_call_in_order(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        records = [_bid_for(store, L.CREATED) for _ in range(3)]
        box.start()
        assert await box.flush(5)
        assert store.pending_callbacks(REQUESTER) == []
    assert callbacks.batches == [[_bid(r) for r in records]]


async def test_a_refused_callback_is_dropped_and_the_others_delivered(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        first, refused, last = (_bid_for(store, L.CREATED) for _ in range(3))
        callbacks.refuse[refused.id] = ExecutionNotFound("no such execution")
        box.start()
        assert await box.flush(5)
        assert store.pending_callbacks(REQUESTER) == []
    assert len(callbacks.batches) == 1
    assert callbacks.messages() == [_bid(first), _bid(last)]


async def test_one_that_may_pass_holds_back_the_rest_until_delivered(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        first, held, last = (_bid_for(store, L.CREATED) for _ in range(3))
        callbacks.refuse[held.id] = Unavailable("the requester is restarting")
        box.start()
        # The first is applied; the held one and the one after it stay queued, in order.
        await eventually(lambda: callbacks.attempts >= 2)
        assert [e.execution_id for e in store.pending_callbacks(REQUESTER)] == [held.id, last.id]
        del callbacks.refuse[held.id]
        assert await box.flush(5)
    assert callbacks.messages() == [_bid(first), _bid(held), _bid(last)]
    assert callbacks.batches[-1] == [_bid(held), _bid(last)]


async def test_retried_until_the_requester_is_back(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks(fail_first=3)
    async with outbox(tmp_path, callbacks) as (store, box):
        records = [_bid_for(store, L.CREATED) for _ in range(2)]
        box.start()
        assert await box.flush(5)
    assert callbacks.failures == 3
    assert callbacks.batches == [[_bid(r) for r in records]]


async def test_a_requester_that_broke_taking_the_call_does_not_lose_the_results(
    tmp_path: Path,
) -> None:
    """An internal error of the requester (its store closed under a handler as it stopped)
    is no refusal: the callbacks stay queued and go once it answers again."""
    broke = InternalError("DeliverCallbacks failed on the remote node: ProgrammingError")
    callbacks = RecordingCallbacks(fail_first=2, fail_with=broke)
    async with outbox(tmp_path, callbacks) as (store, box):
        records = [_bid_for(store, L.CREATED) for _ in range(2)]
        box.start()
        assert await box.flush(5)
    assert callbacks.failures == 2
    assert callbacks.batches == [[_bid(r) for r in records]]


async def test_a_requester_seen_back_ends_the_backoff(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks(fail_first=1)
    with ExecutionStore(tmp_path / "compute.db") as store:
        # A backoff far longer than the test: only retry_now can deliver in time.
        box = CallbackOutbox(
            store=store, callbacks=callbacks, initial_backoff=LONG_LINGER, linger=0.0
        )
        record = _bid_for(store, L.CREATED)
        box.start()
        await eventually(lambda: callbacks.failures == 1)
        box.retry_now(REQUESTER)
        assert await box.flush(5)
        assert callbacks.messages() == [_bid(record)]
        box.retry_now(REQUESTER)  # nothing waits: a no-op
        await box.close(flush_timeout=0)


async def test_a_running_execution_bid_waits_for_its_result(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks, linger=LONG_LINGER) as (store, box):
        box.start()
        record = _bid_for(store)  # accepted, under way here
        box.kick(REQUESTER)
        await _turns()
        assert callbacks.attempts == 0  # lingering
        _complete(store, record)
        box.kick(REQUESTER)
        assert await box.flush(5)
    assert callbacks.batches == [[_bid(record), _result(record)]]


async def test_no_linger_for_a_bid_not_under_way_nor_when_turned_off(tmp_path: Path) -> None:
    # Waiting for approval (two rounds): nothing runs, so nothing to wait for.
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks, linger=LONG_LINGER) as (store, box):
        box.start()
        waiting = _bid_for(store, L.CREATED)
        box.kick(REQUESTER)
        assert await box.flush(5)
    assert callbacks.batches == [[_bid(waiting)]]
    # Under way, but the linger is off.
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path / "off", callbacks, linger=0) as (store, box):
        box.start()
        running = _bid_for(store)
        box.kick(REQUESTER)
        assert await box.flush(5)
    assert callbacks.batches == [[_bid(running)]]


async def test_a_long_execution_bid_leaves_when_the_linger_ends(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks, linger=0.02) as (store, box):
        box.start()
        record = _bid_for(store)
        box.kick(REQUESTER)
        assert await box.flush(5)  # without its result, which never comes
    assert callbacks.batches == [[_bid(record)]]


async def test_held_callbacks_wait_for_the_answer_and_what_it_leaves_goes_by_call(
    tmp_path: Path,
) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        box.start()
        other = _bid_for(store, L.CREATED)
        box.hold("e-not-yet")  # an ask's answer waits for an execution not created yet
        held = make_execution("echo hi")
        box.hold(held.id)
        record = store.create(held, requester_id=REQUESTER, state=L.BID_ACCEPTED)
        store.enqueue_callback(REQUESTER, _bid(record))
        box.kick(REQUESTER, record.id)  # a held execution's kick does nothing
        await _turns()
        assert callbacks.attempts == 0
        box.kick(REQUESTER)
        assert await box.flush(5)
        # The other execution's callback went; the held one waits for the answer.
        assert callbacks.messages() == [_bid(other)]
        box.release(REQUESTER, record.id)  # the answer left without it (a cancelled call)
        assert await box.flush(5)
    assert callbacks.messages() == [_bid(other), _bid(record)]


async def test_answered_callbacks_are_forgotten_once_applied_and_sent_again_if_never(
    tmp_path: Path,
) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks, answer_grace=0.2) as (store, box):
        box.start()
        acked, lost = _bid_for(store), _bid_for(store)
        for record in (acked, lost):
            box.hold(record.id)
            _complete(store, record)
        answers = [box.take_answer(REQUESTER, r.id) for r in (acked, lost)]
        for record in (acked, lost):
            box.release(REQUESTER, record.id)
        assert [a.callbacks if a else None for a in answers] == [
            [_bid(acked), _result(acked)],
            [_bid(lost), _result(lost)],
        ]
        assert await box.flush(5)
        assert callbacks.attempts == 0  # answered: nothing goes by call in their grace
        # Another requester cannot acknowledge them, nor can sequence numbers never answered.
        assert answers[0] is not None and answers[1] is not None
        box.applied("someone-else", answers[0].seqs)
        box.applied(REQUESTER, [max(answers[1].seqs) + 100])
        assert len(store.pending_callbacks(REQUESTER)) == 4
        box.applied(REQUESTER, answers[0].seqs)
        assert box.take_answer(REQUESTER, acked.id) is None  # forgotten at once
        box.kick(REQUESTER)
        await _turns()
        assert callbacks.attempts == 0  # and never sent while their rows wait to be deleted
        assert await box.flush(5)  # and deleted (acknowledgements are written together)
        assert [e.execution_id for e in store.pending_callbacks(REQUESTER)] == [lost.id] * 2
        # The lost answer's callbacks go by call once their grace is over.
        await eventually(lambda: callbacks.attempts > 0)
        assert await box.flush(5)
        assert store.pending_callbacks(REQUESTER) == []
    assert callbacks.messages() == [_bid(lost), _result(lost)]


async def test_a_later_callback_never_overtakes_an_answered_one_of_its_execution(
    tmp_path: Path,
) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        box.start()
        record = _bid_for(store)
        box.hold(record.id)
        answer = box.take_answer(REQUESTER, record.id)  # the bid answer, in the ask's answer
        box.release(REQUESTER, record.id)
        assert answer is not None and answer.callbacks == [_bid(record)]
        # The run ends before the requester applied (or even got) the answer: its result,
        # sent alone, would reach the requester before the bid answer it follows.
        _complete(store, record)
        other = _bid_for(store, L.CREATED)
        box.kick(REQUESTER)  # another execution's callback: the result stays behind
        assert await box.flush(5)
        assert callbacks.messages() == [_bid(other)]
        box.kick(REQUESTER, record.id)  # the pipeline's kick for the result
        assert await box.flush(5)
        assert store.pending_callbacks(REQUESTER) == []
    # The answered bid answer goes again, first, in the result's call (a repeat is a no-op).
    assert callbacks.batches[-1] == [_bid(record), _result(record)]


async def test_an_acknowledgement_lets_what_waited_behind_it_go(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        box.start()
        record = _bid_for(store)
        box.hold(record.id)
        answer = box.take_answer(REQUESTER, record.id)
        box.release(REQUESTER, record.id)
        assert answer is not None
        _complete(store, record)
        box.kick(REQUESTER)
        assert await box.flush(5)
        assert callbacks.attempts == 0  # the result waits behind the answered bid answer
        box.applied(REQUESTER, answer.seqs)  # the next ask acknowledged it
        assert await box.flush(5)
        assert store.pending_callbacks(REQUESTER) == []
    assert callbacks.batches == [[_result(record)]]


async def test_an_answer_for_a_new_execution_is_what_the_outbox_holds(tmp_path: Path) -> None:
    """Held as new (created after the hold, so its callbacks are taken from memory), the
    answer carries what the outbox table holds for it; held as it was (its callbacks may
    predate the hold), the answer is read from the table and carries the earlier ones too."""
    callbacks = RecordingCallbacks()
    async with outbox(tmp_path, callbacks) as (store, box):
        box.start()
        execution = make_execution("echo hi")
        box.hold(execution.id, new=True)
        record = store.create(execution, requester_id=REQUESTER, state=L.BID_ACCEPTED)
        store.enqueue_callback(REQUESTER, _bid(record))
        _complete(store, record)
        answer = box.take_answer(REQUESTER, record.id)
        box.release(REQUESTER, record.id, taken=True)
        table = store.callbacks_of(REQUESTER, record.id)
        assert answer is not None and answer.callbacks == [e.message for e in table]
        assert answer.seqs == [e.seq for e in table] and len(table) == 2

        earlier = _bid_for(store)
        box.hold(earlier.id)
        _complete(store, earlier)
        answer = box.take_answer(REQUESTER, earlier.id)
        box.release(REQUESTER, earlier.id, taken=True)
        assert answer is not None and answer.callbacks == [_bid(earlier), _result(earlier)]
