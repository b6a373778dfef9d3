"""The outbox keeps trying a callback for its whole retry window, counted on the monotonic
clock once it has missed: a wall clock stepped forward (an NTP correction, a resumed VM) while
the requester is out of reach does not make the node give up on a result it holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bacalhau.models import BidResult
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.test_callback_batches import REQUESTER, _bid_for, outbox
from tests.compute.waiting import eventually

HOUR_NS = 3600 * 1_000_000_000


async def test_a_forward_step_of_the_wall_clock_does_not_end_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    callbacks = RecordingCallbacks(fail_first=10**9)  # the requester is down
    async with outbox(tmp_path, callbacks, retry_for=60.0) as (store, box):
        record = _bid_for(store)
        box.start()
        await eventually(lambda: callbacks.failures >= 2)
        real = time.time_ns
        monkeypatch.setattr(time, "time_ns", lambda: real() + 2 * HOUR_NS)
        seen = callbacks.failures
        await eventually(lambda: callbacks.failures >= seen + 5)
        assert store.pending_callbacks(REQUESTER), "the bid answer was given up on"
        callbacks.fail_first = 0  # the requester is back
        box.retry_now(REQUESTER)
        (bid,) = await callbacks.wait_for(record.id, BidResult)
        assert isinstance(bid, BidResult) and bid.accepted


async def test_the_retry_window_still_ends_on_the_monotonic_clock(tmp_path: Path) -> None:
    callbacks = RecordingCallbacks(fail_first=10**9)
    async with outbox(tmp_path, callbacks, retry_for=0.3) as (store, box):
        _bid_for(store)
        box.start()
        await eventually(lambda: not store.pending_callbacks(REQUESTER), timeout=10)
        assert callbacks.failures >= 2
