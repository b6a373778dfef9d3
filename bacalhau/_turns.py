"""Calls made in one turn of the event loop, gathered per key so one of them can serve all.

The first call of a turn for a key waits for the turn to end (the others of that turn join
it meanwhile), then leads: it gets the calls that joined it and settles each one's future,
the others wait on theirs. A leader cancelled while it waits hands the calls that joined it
to ``orphans`` rather than leave them waiting. Used for the asks a requester sends a node
(one AskForBids call) and for the answers they bring back (one store transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Joined", "TurnGroups"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

#: A call that joined a turn's leader: its argument, and the future of its result.
Joined = tuple[T, asyncio.Future[R]]


class TurnGroups(Generic[K, T, R]):
    """See the module. ``orphans(key, joined)`` takes the calls of a leader cancelled while
    it waited (it may :meth:`spawn` what serves them)."""

    def __init__(self, orphans: Callable[[K, list[Joined[T, R]]], None]) -> None:
        self._orphans = orphans
        self._turn: dict[K, list[Joined[T, R]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self,
        key: K,
        item: T,
        lead: Callable[[K, T, list[Joined[T, R]]], Awaitable[R]],
    ) -> R:
        """``item``'s result: ``lead(key, item, joined)``'s for the turn's first call with
        ``key`` (it must settle the futures of ``joined``), the one the leader set for the
        others."""
        joined = self._turn.get(key)
        if joined is not None:
            result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            joined.append((item, result))
            return await result
        joined = self._turn[key] = []
        try:
            await asyncio.sleep(0)  # the calls the rest of this turn makes join this one
        except BaseException:
            del self._turn[key]
            if joined:
                self._orphans(key, joined)
            raise
        del self._turn[key]
        return await lead(key, item, joined)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in a task of its own (cancelling one caller must not take the others'
        results), stopped by :meth:`close`."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel the spawned work still under way, and wait for it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
