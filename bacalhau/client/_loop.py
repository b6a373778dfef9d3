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
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
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
        with _ctrl_c_cancels(self._loop, task) as interrupted:
            try:
                result = self._loop.run_until_complete(task)
            except asyncio.CancelledError:
                if interrupted:
                    raise KeyboardInterrupt from None
                raise
            except KeyboardInterrupt:
                # Ctrl+C raised wherever the call was (Python's own handler, where ours
                # could not be installed), leaving it half done: cancel it and let it unwind
                # here (closing its sockets, ending a log stream), while the loop still
                # runs. Left pending, it would be torn down once the loop is closed,
                # printing tracebacks on the way out.
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        self._loop.run_until_complete(task)
                raise
            if interrupted:
                raise KeyboardInterrupt  # the call ended anyway; the user asked to stop
            return result

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


@contextlib.contextmanager
def _ctrl_c_cancels(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]
) -> Iterator[list[bool]]:
    """While ``task`` runs, a Ctrl+C cancels it, as :class:`asyncio.Runner` does, instead of
    raising KeyboardInterrupt in whatever code runs at that instant (between making a
    coroutine and awaiting it, inside a library: "coroutine ... was never awaited"). The
    list it gives is non-empty once that happened; a second Ctrl+C raises at once. Only
    where Python's own handler is in place, in the main thread."""
    interrupted: list[bool] = []
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield interrupted
        return

    def on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        loop.call_soon_threadsafe(task.cancel)

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
