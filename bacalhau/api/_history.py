"""A job's history as both API edges serve it: filters, and the long-poll.

REST (``GET /jobs/{id}/history``) and gRPC (``JobService.JobHistory``) answer the same
question with the same rules: items after a cursor that pass the client's filters, a page at
a time, held open (``wait``) until something new exists, and with ``until=terminal`` held
until a batch or ops job ends. Only the request parsing and the answer's encoding differ;
they live with each edge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bacalhau.errors import BadQuery
from bacalhau.models import HistoryType, Job, JobHistory
from bacalhau.orchestrator._api import ALL_VERSIONS, JobVersions, OrchestratorAPI

__all__ = [
    "HISTORY_PAGE",
    "MAX_WAIT_SECONDS",
    "HistoryPoll",
    "check_event_type",
    "check_until",
    "history_filter",
    "poll_history",
    "runs_to_an_end",
    "wait_for_change",
    "wait_for_end",
]

#: Items of history returned by one page unless the client asks otherwise (Bacalhau's default).
HISTORY_PAGE = 100
#: Longest a history long-poll (``wait=``) may hold a request open.
MAX_WAIT_SECONDS = 30.0
#: Job types that run until stopped: ``until=terminal`` does not hold their history.
_RUN_UNTIL_STOPPED = frozenset({"daemon", "service"})


def check_event_type(value: str) -> str:
    """The ``event_type`` filter (all, job or execution; empty: all), lower-cased."""
    event_type = (value or "all").lower()
    if event_type not in ("all", "job", "execution"):
        raise BadQuery(
            f"invalid event_type {value[:100]!r}",
            field="event_type",
            hint="use all, job or execution",
        )
    return event_type


def check_until(value: str) -> bool:
    """Whether ``until`` asks to hold the poll until the job ends (empty: no)."""
    until = value.lower()
    if until not in ("", "terminal"):
        raise BadQuery(
            f"invalid until {value[:100]!r}",
            field="until",
            hint='leave it empty, or use "terminal" to wait for the job\'s end',
        )
    return until == "terminal"


def history_filter(
    *, event_type: str, execution_id: str, node_id: str, since: int
) -> Callable[[JobHistory], bool]:
    """Which items a client asked for (prefixes of IDs; ``since`` in Unix seconds)."""

    def keep(item: JobHistory) -> bool:
        if event_type == "job" and item.type != HistoryType.JOB:
            return False
        if event_type == "execution" and item.type != HistoryType.EXECUTION:
            return False
        if execution_id and not item.execution_id.startswith(execution_id):
            return False
        if node_id and not item.node_id.startswith(node_id):
            return False
        return item.time // 1_000_000_000 >= since

    return keep


@dataclass(frozen=True, slots=True)
class HistoryPoll:
    """One answer of the long-poll."""

    #: The job as read before its history (``done``: its history is complete).
    job: Job
    page: list[JobHistory]
    #: More matching items than the page holds.
    more: bool
    #: The job (or the chosen execution) can no longer change.
    done: bool
    #: Where the next call reads from (the last item sent, or past what was skipped).
    next_after: int


def runs_to_an_end(job_type: str) -> bool:
    """Whether jobs of ``job_type`` end by themselves (batch and ops jobs; daemon and service
    jobs run until stopped)."""
    return job_type not in _RUN_UNTIL_STOPPED


async def poll_history(
    orch: OrchestratorAPI,
    job_id: str,
    *,
    keep: Callable[[JobHistory], bool],
    after: int,
    limit: int,
    wait: float,
    until_terminal: bool,
    execution_id: str,
    closing: asyncio.Event,
    namespace: str = "",
    versions: JobVersions = ALL_VERSIONS,
) -> HistoryPoll:
    """Items of ``job_id`` (an ID, or a name in ``namespace``) after ``after`` that ``keep``
    keeps and that belong to the ``versions`` asked for, at most ``limit``; held up to
    ``wait`` seconds while there are none (with ``until_terminal``, while a batch or ops job
    is not finished and the page is not full), or until ``closing`` is set."""
    cursor = after
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(0.0, wait), MAX_WAIT_SECONDS)
    while True:
        # Read the state BEFORE the history: if the job was terminal then, the history read
        # after it is complete and an empty token cannot make the client miss the last items.
        job = await orch.get_job(job_id, namespace=namespace)
        job_id = job.id
        if versions.version > job.version:
            await orch.get_job(job_id, version=versions.version)  # NotFound, naming the field
        done = job.state.is_terminal()
        if execution_id and not done:
            chosen = [
                e for e in await orch.list_executions(job_id) if e.id.startswith(execution_id)
            ]
            done = bool(chosen) and all(e.compute_state.is_terminal() for e in chosen)
        history = await orch.job_history(job_id)
        newest = max((h.seq_num for h in history), default=cursor)
        latest = job.version
        matched = [
            h
            for h in history
            if h.seq_num > cursor and keep(h) and versions.keeps(h.job_version, latest)
        ]
        page, more = matched[:limit], len(matched) > limit
        remaining = deadline - loop.time()
        holding = until_terminal and not more and runs_to_an_end(job.type)
        if (page and not holding) or done or remaining <= 0 or closing.is_set():
            next_after = page[-1].seq_num if more else max(cursor, newest)
            return HistoryPoll(job, page, more, done, next_after)
        if not page:
            # Nothing new for this client: skip what it will never see.
            cursor = max(cursor, newest)
        await wait_for_change(
            closing, orch.wait_for_change(job_id, after_seq=newest, timeout=remaining)
        )


async def wait_for_end(
    orch: OrchestratorAPI, job_id: str, job_type: str, *, wait: float, closing: asyncio.Event
) -> Job | None:
    """The job once it has ended, when it is a batch or ops job that ends within ``wait``
    seconds (at most :data:`MAX_WAIT_SECONDS`); None otherwise (at once for a daemon or
    service job: they run until stopped). For a submit that waits."""
    if wait <= 0 or not runs_to_an_end(job_type):
        return None
    poll = await poll_history(
        orch,
        job_id,
        keep=_no_items,
        after=0,
        limit=1,
        wait=wait,
        until_terminal=True,
        execution_id="",
        closing=closing,
    )
    return poll.job if poll.done else None


def _no_items(item: JobHistory) -> bool:
    return False


async def wait_for_change(closing: asyncio.Event, change: Any) -> None:
    """Await ``change`` unless the server starts closing first."""
    waiter = asyncio.ensure_future(change)
    stopper = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, stopper):
            if not task.done():
                task.cancel()
        if waiter.done() and not waiter.cancelled():
            waiter.result()  # surface the orchestrator's errors
