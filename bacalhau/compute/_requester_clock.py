"""A requester's times, on this node's clock.

A job's QueueTimeout and TotalTimeout count from its create time, which the requester stamped on
its own clock. A compute node whose clock is ahead of the requester's by more than a timeout
would find it passed at once, and fail work that has all its time left; one behind would give
the job more time than it has. Each ask carries the requester's clock at sending, so the node
measures the offset on receipt (:attr:`AskForBidRequest.clock_offset_ns`) and keeps the job's
create time on its own clock: both deadlines then fall when the requester's do.
"""

from __future__ import annotations

import dataclasses
import logging

from bacalhau.models import AskForBidRequest

__all__ = ["NOTICED_OFFSET_NS", "RequesterClocks"]

log = logging.getLogger(__name__)

#: Offsets below this are delays in the network and the requester's queues, not clocks apart
#: (and change nothing a timeout in whole seconds would notice).
NOTICED_OFFSET_NS = 1_000_000_000
#: A requester's offset is logged again when it moved this much since it was last logged.
_RELOG_NS = 60 * NOTICED_OFFSET_NS


class RequesterClocks:
    """Puts each ask's job times on this node's clock, and says once which requester's clock
    is apart from this node's, and by how much."""

    def __init__(self) -> None:
        self._logged: dict[str, int] = {}

    def localize(self, requester_id: str, request: AskForBidRequest) -> AskForBidRequest:
        """``request`` with its job's create time moved onto this node's clock."""
        offset = request.clock_offset_ns
        job = request.execution.job
        if abs(offset) < NOTICED_OFFSET_NS or job is None or job.create_time <= 0:
            return request
        self._note(requester_id, offset)
        execution = dataclasses.replace(
            request.execution,
            job=dataclasses.replace(job, create_time=job.create_time + offset),
        )
        return dataclasses.replace(request, execution=execution)

    def _note(self, requester_id: str, offset: int) -> None:
        logged = self._logged.get(requester_id)
        if logged is not None and abs(offset - logged) < _RELOG_NS:
            return
        self._logged[requester_id] = offset
        log.warning(
            "the clock of requester %s is %s %s this node's: its jobs' QueueTimeout and "
            "TotalTimeout are counted on this node's clock accordingly; keep the nodes' clocks "
            "in step (NTP)",
            requester_id,
            _span(abs(offset)),
            "behind" if offset > 0 else "ahead of",
        )


def _span(ns: int) -> str:
    """``2h0m5s``, ``3m10s``, ``12s``: a clock offset as people read it."""
    seconds = round(ns / 1e9)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
