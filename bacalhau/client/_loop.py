"""The private event loop behind the blocking clients, usable where a loop already runs.

A blocking client owns one event loop, so one connection pool serves all its calls. Where no
loop runs in the calling thread (a script, the CLI) each call runs that loop until the call is
done. Where one does (a Jupyter notebook, an async application calling the blocking client),
running a second loop in the same thread is refused by asyncio; the private loop then runs in
a thread of its own, from the first such call on, and each call waits for its answer there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopRunner"]

T = TypeVar("T")


class LoopRunner:
    """Runs coroutines to completion on one private event loop, from any thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        #: Set once the loop runs in a thread of its own (then it stays there).
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and return its result (or raise its error)."""
        if self._thread is None and not _loop_running_here():
            return self._run_here(coro)
        return self._run_in_thread(coro)

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """``run(fn(*args))``, the coroutine made here: a Ctrl+C that lands between making
        it and handing it over leaves no coroutine that was never awaited (Python would
        warn of it on the way out)."""
        coro = fn(*args)
        try:
            return self.run(coro)
        except BaseException:
            # Never started: nothing else holds it (a coroutine handed to the loop's own
            # thread is that thread's to finish).
            if self._thread is None and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()
            raise

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        """Run ``last`` (closing what the loop holds), then close the loop; idempotent."""
        if self._loop.is_closed():
            if last is not None:
                last.close()
            return
        if last is not None:
            self.run(last)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._thread = None
        self._loop.close()

    def _run_here(self, coro: Coroutine[Any, Any, T]) -> T:
        task = self._loop.create_task(coro)
        try:
            return self._loop.run_until_complete(task)
        except KeyboardInterrupt:
            # Ctrl+C stops the loop wherever the call was, leaving it half done: cancel it
            # and let it unwind here (closing its sockets, ending a log stream), while the
            # loop still runs. Left pending, it would be torn down once the loop is closed,
            # printing tracebacks on the way out.
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    self._loop.run_until_complete(task)
            raise

    def _run_in_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="bacalhau-client-loop", daemon=True
            )
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            # An interrupted notebook cell: the call must not go on behind the user's back.
            future.cancel()
            with contextlib.suppress(concurrent.futures.CancelledError, Exception):
                future.result(timeout=5)
            raise


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
