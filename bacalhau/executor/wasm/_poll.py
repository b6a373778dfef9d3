"""An interruptible WASI ``poll_oneoff``: the call every WASI sleep goes through.

The engine's epoch stops a module only while it runs WebAssembly. A module sleeping (``sleep``,
``nanosleep``, ``poll`` with a timeout) sits in wasmtime's own ``poll_oneoff`` for the whole
sleep, where nothing can reach it: a cancelled or expired run, or a node shutting down, would
wait for the sleep to end, and the worker thread with it. This replacement waits on the run's
wake-up event instead, so cancelling the run wakes it at once and the call traps.

What it implements (WASI preview 1): clock subscriptions, relative or absolute, on the realtime
and monotonic clocks (the CPU-time clocks are taken as monotonic); fd subscriptions are
reported ready at once, as they are for the regular files and the closed stdin a run has.
In a deterministic run (see ``_determinism``) clock subscriptions are measured against the
run's virtual clock, and a sleep moves that clock on instead of waiting.
"""

from __future__ import annotations

import struct
import threading
import time

import wasmtime

from bacalhau.executor.wasm._determinism import DeterministicSource, running_source
from bacalhau.executor.wasm._interrupt import YIELDED, RunWatch

__all__ = ["RunStopped", "define_poll_oneoff", "running_watch", "set_running_watch"]

#: userdata, tag, clock id, timeout, precision, flags (48 bytes)
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
#: userdata, tag (the start of any subscription)
_FD_SUBSCRIPTION = struct.Struct("<QB")
#: userdata, error, type, nbytes, flags (32 bytes)
_EVENT = struct.Struct("<QHB5xQH6x")

_EVENTTYPE_CLOCK = 0
_SUBCLOCKFLAGS_ABSTIME = 1
_CLOCK_REALTIME = 0
_MAX_CLOCK_ID = 3
_ERRNO_FAULT = 21
_ERRNO_INVAL = 28

_local = threading.local()


class RunStopped(Exception):
    """Raised inside a host call of a run that was cancelled or ran out of time."""


def set_running_watch(watch: RunWatch | None) -> None:
    """Declare the run the calling worker thread executes (None once it is over)."""
    _local.watch = watch


def running_watch() -> RunWatch | None:
    watch: RunWatch | None = getattr(_local, "watch", None)
    return watch


def define_poll_oneoff(linker: wasmtime.Linker) -> None:
    """Shadow WASI's ``poll_oneoff`` in ``linker`` (which must allow shadowing)."""
    i32 = wasmtime.ValType.i32()
    linker.define_func(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        wasmtime.FuncType([i32, i32, i32, i32], [i32]),
        _poll_oneoff,
        access_caller=True,
    )


def _poll_oneoff(
    caller: wasmtime.Caller, subs_ptr: int, events_ptr: int, count: int, nevents_ptr: int
) -> int:
    if count <= 0:
        return _ERRNO_INVAL
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return _ERRNO_FAULT
    try:
        raw = memory.read(caller, subs_ptr, subs_ptr + count * _SUBSCRIPTION.size)
    except (IndexError, ValueError):
        return _ERRNO_FAULT
    watch = running_watch()
    virtual = running_source()
    ready: list[tuple[int, int]] = []  # (userdata, event type) of fd subscriptions
    clocks: list[tuple[int, int]] = []  # (userdata, nanoseconds left)
    for i in range(count):
        offset = i * _SUBSCRIPTION.size
        userdata, tag = _FD_SUBSCRIPTION.unpack_from(raw, offset)
        if tag != _EVENTTYPE_CLOCK:
            ready.append((userdata, tag))
            continue
        _, _, clock_id, timeout, _, flags = _SUBSCRIPTION.unpack_from(raw, offset)
        if clock_id > _MAX_CLOCK_ID:
            return _ERRNO_INVAL
        left = timeout
        if flags & _SUBCLOCKFLAGS_ABSTIME:
            left = timeout - _clock_now(clock_id, watch, virtual)
        clocks.append((userdata, left))
    if ready:
        fired = ready
    else:
        shortest = min(left for _, left in clocks)
        if virtual is not None:
            virtual.sleep(shortest)  # a deterministic run's sleeps take no real time
            if watch is not None and watch.check_stop():
                raise RunStopped(watch.stopped)
        else:
            _sleep(shortest / 1e9, watch)
        fired = [(userdata, _EVENTTYPE_CLOCK) for userdata, left in clocks if left <= shortest]
    events = b"".join(_EVENT.pack(userdata, 0, kind, 0, 0) for userdata, kind in fired)
    try:
        memory.write(caller, events, events_ptr)
        memory.write(caller, struct.pack("<I", len(fired)), nevents_ptr)
    except (IndexError, ValueError):
        return _ERRNO_FAULT
    return 0


def _clock_now(clock_id: int, watch: RunWatch | None, virtual: DeterministicSource | None) -> int:
    if virtual is not None:
        return virtual.peek_clock(clock_id)
    if clock_id == _CLOCK_REALTIME:
        return time.time_ns()
    # wasmtime's monotonic clock counts from the creation of the run's WASI context.
    base = watch.monotonic_base_ns if watch is not None else 0
    return time.monotonic_ns() - base


def _sleep(seconds: float, watch: RunWatch | None) -> None:
    """Sleep, waking early (and raising :class:`RunStopped`) when the run must stop."""
    if seconds > 0 and watch is not None and watch.must_yield(blocking=True):
        # On the event loop's thread: waiting here would stall the node; run it on a worker.
        raise RunStopped(YIELDED)
    end = time.monotonic() + max(seconds, 0.0)
    while True:
        if watch is not None and watch.check_stop():
            raise RunStopped(watch.stopped)
        now = time.monotonic()
        if now >= end:
            return
        wait = end - now
        if watch is None:
            time.sleep(wait)
            continue
        if watch.deadline is not None:
            wait = min(wait, max(watch.deadline - now, 0.0))
        watch.wake.wait(wait)
