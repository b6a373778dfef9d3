"""Riding out a short loss of the API while following a job: a requester restarting (an
upgrade, a crash and its supervisor) is back within seconds, and the job it holds goes on.

A follower that lost contact says so once, tries again with a growing pause, and gives up
only after ``grace`` seconds without an answer (or at its own deadline), naming the job,
which keeps running either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bacalhau.errors import Unavailable

T = TypeVar("T")

__all__ = ["DEFAULT_RECONNECT_GRACE", "Outage"]

log = logging.getLogger("bacalhau.client")

#: How long a follower keeps trying an API it lost (a requester restart takes seconds).
DEFAULT_RECONNECT_GRACE = 60.0
_FIRST_PAUSE = 0.25
_LONGEST_PAUSE = 3.0


class Outage:
    """The state of one follower's contact with the API."""

    def __init__(self, job_id: str, grace: float, *, again: str = "") -> None:
        """``again``: the command that follows the job again, for the error once the grace
        has run out (default: ``bacalhau job describe``)."""
        self._job_id = job_id
        self._grace = grace
        self._again = again or f"bacalhau job describe {job_id}"
        self._since: float | None = None
        self._pause = 0.0

    def lost(self, err: Unavailable, now: float, deadline: float) -> float:
        """``err`` ended a call at ``now``: the pause before trying again, or ``err`` again
        (naming the job) once the grace or the follower's deadline has run out."""
        if self._since is None:
            self._since = now
            log.warning(
                "lost contact with the API while following job %s (%s); trying again for "
                "up to %gs: the job itself keeps running",
                self._job_id,
                err.message,
                self._grace,
            )
        self._pause = min(max(self._pause * 2, _FIRST_PAUSE), _LONGEST_PAUSE)
        if now - self._since + self._pause > self._grace or now + self._pause >= deadline:
            raise Unavailable(
                f"{err.message} (no answer for {now - self._since:.0f}s while following job "
                f"{self._job_id}, which keeps running)",
                hint=f"once the node answers again, follow the job with: {self._again}",
            ) from err
        return self._pause

    def back(self, now: float) -> None:
        """A call succeeded: say so if contact had been lost."""
        if self._since is not None:
            log.warning(
                "in contact with the API again after %.0fs; following job %s",
                now - self._since,
                self._job_id,
            )
        self._since = None
        self._pause = 0.0

    async def ride(self, call: Callable[..., Awaitable[T]], deadline: float) -> T:
        """``call(wait=...)``'s answer (``wait``: the seconds left to ``deadline``), made
        again after each pause :meth:`lost` gives while the API is unavailable, until the
        grace or the deadline runs out (which raises)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                answer = await call(wait=max(deadline - loop.time(), 0.001))
            except Unavailable as err:
                await asyncio.sleep(self.lost(err, loop.time(), deadline))
                continue
            self.back(loop.time())
            return answer
