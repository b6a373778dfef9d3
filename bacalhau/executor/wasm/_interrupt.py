"""Stopping running WebAssembly: timeouts and cancellation through the engine's epoch.

The engine is built with epoch interruption: compiled code checks, at loop heads and function
entries, whether the engine's epoch has reached its store's deadline. A ticker thread advances
the epoch every :data:`TICK_SECONDS` while any run is watched (and sleeps otherwise). Each
store's deadline is one tick ahead; when it is reached, wasmtime calls our deadline callback,
which either extends it by one more tick or, if that run was cancelled or is past its time
limit, returns an error that traps the run. One shared engine can so stop exactly one of its
stores, promptly, without any cost to the others.

A run on the event loop's own thread (see ``WasmExecutor``) has a slice of that thread's CPU
time: past ``RunWatch.slice_end`` the callback traps it as :data:`YIELDED`, and the executor
runs it again from the start on a worker thread. The loop is so held at most a slice and one
tick. CPU time, not wall time: on a busy machine the thread may wait for a core mid-run, and
that wait says nothing of the module.

wasmtime-py does not wrap the C API's ``wasmtime_store_epoch_deadline_callback``; its
generated ctypes bindings do, and are used here for that one call.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import _bindings

TICK_SECONDS = 0.01

CANCELLED = "cancelled"
TIMED_OUT = "timed out"
#: Why an inline run was stopped: its slice of the event loop is over (not a failure).
YIELDED = "yielded the event loop"

_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE


@dataclass(slots=True)
class RunWatch:
    """The stop conditions of one run, read by the deadline callback on every tick."""

    key: int
    #: Seconds the run may take once armed; None = no limit.
    timeout: float | None = None
    #: ``time.monotonic()`` after which the run is stopped (set when armed).
    deadline: float | None = None
    #: ``time.monotonic()`` of the cancel request; None while not cancelled.
    cancelled_at: float | None = None
    #: Why the run was stopped (:data:`CANCELLED`, :data:`TIMED_OUT`), empty while it was not.
    stopped: str = ""
    #: Set on cancel: wakes the run if it sleeps in a host call (see ``_poll``).
    wake: threading.Event = field(default_factory=threading.Event)
    #: ``time.monotonic_ns()`` when the run's WASI context was made (its monotonic clock's 0).
    monotonic_base_ns: int = 0
    #: For a run on the event loop's thread: the ``time.thread_time()`` (of that thread)
    #: past which it must give the thread back (None: a worker's run, which may take its
    #: whole time).
    slice_end: float | None = None
    #: Set when the run was stopped to give the loop's thread back (see :meth:`must_yield`).
    yielded: bool = False

    def cancel(self) -> None:
        """Ask for the run to stop (seen at the next tick, or at once by a sleeping run)."""
        if self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
        self.wake.set()

    def check_stop(self) -> str:
        """Record and return why the run must stop now (empty: it may go on)."""
        if not self.stopped:
            if self.cancelled_at is not None:
                self.stopped = CANCELLED
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.stopped = TIMED_OUT
        return self.stopped

    def must_yield(self, *, blocking: bool = False) -> bool:
        """Whether a run on the event loop's thread must stop now (its slice is over, or it
        is about to block: ``blocking``), to run again on a worker; records it if so."""
        if self.slice_end is not None and (blocking or time.thread_time() >= self.slice_end):
            self.yielded = True
        return self.yielded


# The callback is called from wasmtime with only an integer to go by: the key of a watch here.
_WATCHES: dict[int, RunWatch] = {}
_KEYS = itertools.count(1)

_CallbackType: Any = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
_FinalizerType: Any = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]
_NO_FINALIZER = _FinalizerType()  # a NULL function pointer


def _on_deadline(_context: Any, data: int | None, delta: Any, kind: Any) -> int:
    watch = _WATCHES.get(data or 0)
    if watch is not None and (watch.check_stop() or watch.must_yield()):
        why = watch.stopped or YIELDED
        error = _bindings.wasmtime_error_new(f"execution {why}".encode())
        # Ownership of the error passes to wasmtime, which turns it into a trap.
        return ctypes.cast(error, ctypes.c_void_p).value or 0
    delta[0] = 1
    kind[0] = _CONTINUE
    return 0


# Kept at module level: the C side holds this function pointer for the life of every store.
_CALLBACK = _CallbackType(_on_deadline)


class EpochInterrupter:
    """Arms stores with the deadline callback and drives the engine's epoch while needed."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._cond = threading.Condition()
        self._ticker: threading.Thread | None = None

    def new_watch(self, timeout: float | None) -> RunWatch:
        """A watch for one run; its time limit starts counting at :meth:`arm`."""
        limit = timeout if timeout is not None and timeout > 0 else None
        return RunWatch(key=next(_KEYS), timeout=limit)

    def arm(self, store: wasmtime.Store, watch: RunWatch) -> None:
        """Make ``store`` stoppable through ``watch`` (call before running code in it)."""
        if watch.timeout is not None:
            watch.deadline = time.monotonic() + watch.timeout
        _WATCHES[watch.key] = watch
        _bindings.wasmtime_store_epoch_deadline_callback(
            store.ptr(), _CALLBACK, ctypes.c_void_p(watch.key), _NO_FINALIZER
        )
        store.set_epoch_deadline(1)
        with self._cond:
            self._active += 1
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name="wasm-epoch-ticker", daemon=True
                )
                self._ticker.start()
            self._cond.notify()

    def disarm(self, watch: RunWatch) -> None:
        """Forget ``watch`` once its store has stopped running code."""
        if _WATCHES.pop(watch.key, None) is None:
            return
        with self._cond:
            self._active -= 1

    def _tick(self) -> None:
        # A daemon thread: it must never keep the process alive, and idles on the condition.
        while True:
            with self._cond:
                while self._active == 0:
                    self._cond.wait()
            time.sleep(TICK_SECONDS)
            self._engine.increment_epoch()
