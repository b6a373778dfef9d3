"""Checking a verified replica's published results against the CID its node claims.

A compute node's signed ``RunResult`` names the CID of its results directory; the verifier
compares those CIDs. A dishonest node could claim the CID the others will agree on without
publishing those bytes, so before the verdict the requester looks at what each replica
really published (:class:`ResultChecker`, implemented next to the publishers and injected by
``node/``): a result whose content has another CID is a disagreement, whatever it claims.

The check runs in the background once the replica's ``RunResult`` is recorded: the
execution is marked ``ResultCheck: pending`` in the same write, so the verified scheduler
waits for it (and a requester restarted meanwhile starts it again); the outcome is written
to the execution's details and the job evaluated again. Nothing is held while downloading:
neither the store's lock nor the event loop (the checker's work runs in a thread).

Outcomes (the ``ResultCheck`` detail):

- ``matched``: the published content has the claimed CID.
- ``mismatch``: it has another (``PublishedCID``), or is not what the node said it published
  (a malformed archive, blocks the node does not serve): the replica disagrees.
- ``unchecked``: it could not be checked, and ``ResultCheckNote`` says why (nothing published,
  no pre-signed URL, beyond the size limit, unreachable); the CID is then taken as claimed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from bacalhau.errors import BacalhauError, NotFound, RevisionConflict
from bacalhau.models import (
    Event,
    Execution,
    ExecutionStateType,
    Job,
    SpecConfig,
    TriggeredBy,
    now_ns,
)
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._verifier import (
    CHECK_DETAIL,
    CHECK_NOTE_DETAIL,
    MATCHED,
    MISMATCH,
    PENDING,
    PUBLISHED_CID_DETAIL,
    UNCHECKED,
    CheckStatus,
    check_pending,
)

__all__ = [
    "CHECK_DETAIL",
    "CHECK_NOTE_DETAIL",
    "MATCHED",
    "MISMATCH",
    "PENDING",
    "PUBLISHED_CID_DETAIL",
    "UNCHECKED",
    "ResultCheck",
    "ResultChecker",
    "ResultChecks",
    "check_pending",
]

log = logging.getLogger(__name__)

#: Checks running at once: each downloads and hashes up to the size limit.
_CONCURRENT = 2


@dataclass(frozen=True, slots=True)
class ResultCheck:
    """What a look at one published result found."""

    status: CheckStatus
    #: The CID of the content actually published, when it was computed.
    published_cid: str = ""
    #: Why it was not checked, or what did not match.
    note: str = ""

    @classmethod
    def matched(cls, cid: str) -> ResultCheck:
        return cls(MATCHED, published_cid=cid)

    @classmethod
    def mismatch(cls, published_cid: str, note: str) -> ResultCheck:
        return cls(MISMATCH, published_cid=published_cid, note=note)

    @classmethod
    def unchecked(cls, note: str) -> ResultCheck:
        return cls(UNCHECKED, note=note)

    def details(self) -> dict[str, str]:
        out: dict[str, str] = {CHECK_DETAIL: self.status}
        if self.published_cid:
            out[PUBLISHED_CID_DETAIL] = self.published_cid
        if self.note:
            out[CHECK_NOTE_DETAIL] = self.note
        return out


class ResultChecker(Protocol):
    """Looks at what a node published (implemented by ``publisher.PublishedResultChecker``)."""

    async def check(self, result: SpecConfig, claimed_cid: str, node_id: str) -> ResultCheck:
        """Whether ``result`` (published by ``node_id``) holds content whose CID is
        ``claimed_cid``. Never raises for what the node published; an unexpected failure
        is the caller's to report as unchecked."""
        ...


class ResultChecks:
    """Runs the checks of completed replicas in the background and records their outcome.

    ``enqueue(job, triggered_by)`` evaluates the job once a check has ended.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        checker: ResultChecker,
        enqueue: Callable[[Job, str], object],
    ) -> None:
        self._store = store
        self._checker = checker
        self._enqueue = enqueue
        self._limit = asyncio.Semaphore(_CONCURRENT)
        self._running: dict[str, asyncio.Task[None]] = {}

    def start(self, ex: Execution) -> None:
        """Check ``ex``'s published result (once: a check already running is kept)."""
        if ex.id in self._running:
            return
        task = asyncio.create_task(self._run(ex), name=f"result-check-{ex.id}")
        self._running[ex.id] = task
        task.add_done_callback(lambda _: self._running.pop(ex.id, None))

    def resume(self, executions: Iterable[Execution]) -> int:
        """Start again the checks a restart cut short; returns how many."""
        resumed = 0
        for ex in executions:
            if ex.compute_state == ExecutionStateType.COMPLETED and check_pending(ex):
                self.start(ex)
                resumed += 1
        return resumed

    async def aclose(self) -> None:
        """Stop the checks running (each starts again after a restart)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, ex: Execution) -> None:
        claimed = ex.published_result.params.get("CID", "") if ex.published_result else ""
        claimed = claimed.strip() if isinstance(claimed, str) else ""
        async with self._limit:
            try:
                outcome = await self._checker.check(
                    ex.published_result or SpecConfig(), claimed, ex.node_id
                )
            except asyncio.CancelledError:
                raise
            except BacalhauError as err:
                outcome = ResultCheck.unchecked(f"the check failed: {err.message}")
            except Exception as err:
                log.exception("checking the results of execution %s failed", ex.id)
                outcome = ResultCheck.unchecked(f"the check failed: {type(err).__name__}")
        self._record(ex.id, claimed, outcome)

    def _record(self, execution_id: str, claimed: str, outcome: ResultCheck) -> None:
        try:
            ex = self._store.get_execution(execution_id)
        except NotFound:
            return  # the job was deleted meanwhile
        if not check_pending(ex):
            return
        if outcome.status == MISMATCH:
            # Worth an operator's look: the node claimed results it did not publish.
            log.warning(
                "job %s: execution %s on node %s claims results %s but published %s (%s)",
                ex.job_id,
                ex.id,
                ex.node_id,
                claimed or "(no CID)",
                outcome.published_cid or "something else",
                outcome.note,
            )
            message = f"Published results do not match the claimed {claimed or '(no CID)'}: " + (
                f"they are {outcome.published_cid}" if outcome.published_cid else outcome.note
            )
        elif outcome.status == MATCHED:
            message = f"Published results checked: their CID is the claimed {claimed}"
        else:
            log.info("job %s: results of %s not checked: %s", ex.job_id, ex.id, outcome.note)
            message = f"Published results not checked ({outcome.note}): the CID is as claimed"
        details = {
            k: v
            for k, v in ex.compute_details.items()
            if k not in (CHECK_DETAIL, PUBLISHED_CID_DETAIL, CHECK_NOTE_DETAIL)
        }
        try:
            self._store.update_execution(
                ex.id,
                compute_details={**details, **outcome.details()},
                expected_revision=ex.revision,
                event=Event(
                    message=message,
                    topic="Verification",
                    timestamp=now_ns(),
                    details=outcome.details(),
                ),
            )
        except RevisionConflict:
            # Changed meanwhile (the job stopped, a verdict): look again from the top.
            latest = self._store.get_execution(execution_id)
            if check_pending(latest):
                self._record(execution_id, claimed, outcome)
            return
        self._enqueue(self._store.get_job(ex.job_id), TriggeredBy.EXEC_UPDATE)
