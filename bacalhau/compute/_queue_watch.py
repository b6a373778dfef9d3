"""Telling requesters which of their executions wait in this node's run queue.

A node accepts work beyond its free room (over-subscription) into its run queue, where an
execution may wait long: behind a service that never ends, say, while another node sits
idle. Its requester cannot see that by itself (the execution shows as accepted, as a running
one does). So the node's execution report lists what waits, and for how long; and once an
execution has waited :data:`REPORT_AFTER` seconds, or starts after its requester heard it
waits, the node sends its requester a report soon (at most one per requester per check)
rather than at the next periodic round. The
requester may then take it back (``WithdrawQueued``) and place it where there is room now.
A short wait in a burst of work says nothing and costs nothing: no report.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping

from bacalhau.compute._metrics import QUEUE_DEPTH
from bacalhau.compute._queue import RunQueue
from bacalhau.models import QueuedExecution

_log = logging.getLogger(__name__)

#: Seconds an execution waits in the queue before its requester is told at once.
REPORT_AFTER = 2.0
#: Seconds between two looks at the queue.
CHECK_EVERY = 1.0


class QueueWatch:
    """Finds executions that have waited long in the run queue and has their requesters
    told (``listen``); lists each requester's waiting executions for its report. Also feeds
    the queue-depth gauge."""

    def __init__(
        self,
        queue: RunQueue,
        requester_of: Mapping[str, str],
        *,
        report_after: float = REPORT_AFTER,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self._queue = queue
        # A process runs one compute node: the gauge reads its queue (weakly: a node closed
        # and dropped, as tests do, reads as empty).
        ref = weakref.ref(queue)
        QUEUE_DEPTH.set_function(lambda: float(q.queued_count if (q := ref()) else 0))
        self._requester_of = requester_of
        self._after = report_after
        self._every = check_every
        self._listeners: list[Callable[[str], object]] = []
        #: Executions already reported as waiting long (dropped once they leave the queue).
        self._told: set[str] = set()

    def listen(self, tell: Callable[[str], object]) -> None:
        """Call ``tell(requester_id)`` when one of that requester's executions has waited
        long in the queue (a report is due)."""
        self._listeners.append(tell)

    def queued_for(self, requester_id: str) -> list[QueuedExecution]:
        """``requester_id``'s executions waiting in the queue, with how long they waited."""
        return [
            QueuedExecution(execution_id, waited)
            for execution_id, waited in self._queue.waiting()
            if self._requester_of.get(execution_id) == requester_id
        ]

    def check(self) -> set[str]:
        """The requesters with an execution newly past :data:`REPORT_AFTER` in the queue, or
        that started after they heard it waits; each is told (see :meth:`listen`)."""
        waiting = self._queue.waiting()
        here = {execution_id for execution_id, _ in waiting}
        due: set[str] = set()
        # One its requester heard waits and that now runs: the requester hears that too.
        for execution_id in self._told - here:
            if requester := self._requester_of.get(execution_id):
                due.add(requester)
        self._told &= here
        for execution_id, waited in waiting:
            requester = self._requester_of.get(execution_id)
            if waited >= self._after and execution_id not in self._told and requester:
                self._told.add(execution_id)
                due.add(requester)
        for requester in sorted(due):
            for tell in self._listeners:
                tell(requester)
        return due

    async def run(self) -> None:
        """Check every :data:`CHECK_EVERY` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._every)
            try:
                self.check()
            except Exception:
                _log.exception("looking at the run queue failed")
