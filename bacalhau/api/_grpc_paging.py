"""Answers of the public gRPC API kept to a size every gRPC client reads.

gRPC clients refuse messages over 4 MiB unless told otherwise. A job's document can be
megabytes (labels, an inline WASM module), and a job can gather thousands of executions and
history items (a service restarted for weeks, a job of many partitions), each execution with
up to 4 KiB of its run's output. So:

- a ListJobs page holds jobs up to :data:`MAX_PAGE_BYTES`, and its ``next_token`` goes on
  after the last job it holds, as a token of the REST listing does (its keyset cursor); a
  job larger than that comes alone;
- ListExecutions pages the same way, in creation order, with the REST listing's tokens;
- an answer that carries a job with its history or executions (GetJob, a SubmitJob that
  waited, JobHistory) holds what fits under :data:`MAX_ANSWER_BYTES` and says where to go
  on from (``executions_next_token``, ``history_more``).

REST answers are not bounded: an HTTP body has no such limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from bacalhau._proto.v1 import api_pb2
from bacalhau.api._grpc_convert import execution_document, history_item, job_document
from bacalhau.api._jobs import job_page
from bacalhau.api._keyset import Cursor, KeysetToken, keyset_page
from bacalhau.api._query import JobListToken
from bacalhau.models import Execution, Job, JobHistory
from bacalhau.orchestrator._api import OrchestratorAPI, job_sort_value

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_PAGE_BYTES",
    "carry_executions",
    "execution_page",
    "fitting_history",
    "list_jobs",
]

#: Most bytes of job documents in one ListJobs answer, and of execution documents in one
#: ListExecutions answer: room under the 4 MiB default for the token and the framing.
MAX_PAGE_BYTES = 3 * 1024 * 1024
#: Most bytes of an answer that carries a job with its history or executions: the 4 MiB a
#: gRPC client reads by default, less room for the framing and the trailing metadata. (A job
#: may take 64 KiB less than the 4 MiB, see ``_job_size``: it always fits.)
MAX_ANSWER_BYTES = 4 * 1024 * 1024 - 16 * 1024
#: A repeated field's tag and length prefix, at most, per document.
_FRAMING = 6
#: The order of ListExecutions (and of the executions an answer carries).
_CREATED = "created_at"
#: The order of ListJobVersions.
_VERSION = "version"


class _Sized(Protocol):
    def ByteSize(self) -> int: ...


_Doc = TypeVar("_Doc", bound=_Sized)
_Item = TypeVar("_Item")
#: The listing's orders by the names a request or token may give them (those of REST).
_ORDERS = {"create_time": "created_at", "modify_time": "modified_at"}


async def list_jobs(
    orchestrator: OrchestratorAPI, request: api_pb2.ListJobsRequest
) -> api_pb2.ListJobsResponse:
    """One page of jobs as REST pages them, cut short where it would outgrow
    :data:`MAX_PAGE_BYTES`."""
    page, next_token = await job_page(
        orchestrator,
        namespace=request.namespace,
        labels=request.labels,
        next_token=request.next_token,
        order_by=request.order_by,
        reverse=request.reverse,
        limit=request.limit,
    )
    # Encoding large specs holds the GIL for a while: off the event loop.
    jobs = await asyncio.to_thread(lambda: [job_document(j) for j in page.items])
    kept = _fitting(jobs)
    if kept < len(jobs):
        next_token = _token_after(request, page.items[kept - 1], kept)
    return api_pb2.ListJobsResponse(jobs=jobs[:kept], next_token=next_token)


def _fitting(jobs: list[api_pb2.JobDocument]) -> int:
    """How many of ``jobs``, from the first, fit in a page (at least one)."""
    return len(_documents(jobs, lambda job: job, MAX_PAGE_BYTES, at_least_one=True))


def _documents(
    items: Sequence[_Item], convert: Callable[[_Item], _Doc], budget: int, *, at_least_one: bool
) -> list[_Doc]:
    """Documents of ``items``, from the first, while they fit in ``budget`` bytes (with at
    least one, when asked, however large). Converted one by one: the rest is never built."""
    out: list[_Doc] = []
    size = 0
    for item in items:
        doc = convert(item)
        size += doc.ByteSize() + _FRAMING
        if size > budget and (out or not at_least_one):
            break
        out.append(doc)
    return out


def fitting_history(
    history: Sequence[JobHistory], budget: int, *, at_least_one: bool
) -> list[api_pb2.HistoryItem]:
    """The first items of ``history`` that fit in ``budget`` bytes."""
    return _documents(history, history_item, budget, at_least_one=at_least_one)


def fitting_diff(diff: str) -> tuple[str, list[str]]:
    """``diff`` whole when it fits in :data:`MAX_PAGE_BYTES` (a diff of two large versions
    holds both), else cut after its last whole line that does (inside a line longer than
    that), with a warning saying so: an empty diff would say "nothing changes"."""
    raw = diff.encode()
    if len(raw) <= MAX_PAGE_BYTES:
        return diff, []
    cut = raw.rfind(b"\n", 0, MAX_PAGE_BYTES) + 1 or MAX_PAGE_BYTES
    kept = raw[:cut].decode(errors="ignore")
    return kept, [
        f"the diff is cut to its first {cut} of {len(raw)} bytes to fit one answer; "
        "PUT /api/v1/orchestrator/jobs/diff on the REST API gives it whole"
    ]


def execution_page(
    executions: Sequence[Execution],
    *,
    budget: int,
    token: str = "",
    limit: int = 0,
    at_least_one: bool = True,
) -> tuple[list[api_pb2.ExecutionDocument], str]:
    """The documents of ``executions`` (oldest first) after ``token`` that fit in ``budget``
    bytes, at most ``limit`` (0: no count limit), and the token to go on with ("" once the
    last has come): the REST listing's token (:mod:`bacalhau.api._keyset`), in creation
    order. Raises :class:`~bacalhau.errors.BadQuery` naming ``next_token`` for a token of
    another order, or one this server did not make."""
    return _keyset_documents(
        executions,
        _created,
        _CREATED,
        execution_document,
        budget=budget,
        token=token,
        limit=limit,
        at_least_one=at_least_one,
        listing="executions",
    )


def version_page(
    versions: Sequence[Job], *, token: str = "", limit: int = 0
) -> tuple[list[api_pb2.JobDocument], str]:
    """The versions of a job after ``token`` (oldest first) that fit in a page (at least
    one), at most ``limit`` (0: no count limit), and the token to go on with ("" once the
    last has come)."""
    return _keyset_documents(
        versions,
        _version,
        _VERSION,
        job_document,
        budget=MAX_PAGE_BYTES,
        token=token,
        limit=limit,
        at_least_one=True,
        listing="job versions",
    )


def _keyset_documents(
    items: Sequence[_Item],
    cursor: Callable[[_Item], Cursor],
    order: str,
    convert: Callable[[_Item], _Doc],
    *,
    budget: int,
    token: str,
    limit: int,
    at_least_one: bool,
    listing: str,
) -> tuple[list[_Doc], str]:
    """The documents of ``items`` in ``order`` (ascending, by ``cursor``) after ``token``
    that fit in ``budget`` bytes, at most ``limit``; and the token of the rest ("" for
    none)."""
    after = None
    if token:
        kept = KeysetToken.decode(token, numeric={order}, text=(), listing=listing)
        after = kept.after
    rest, _ = keyset_page(items, cursor, reverse=False, limit=0, after=after)
    wanted = rest[:limit] if limit > 0 else rest
    docs = _documents(wanted, convert, budget, at_least_one=at_least_one)
    if len(docs) == len(rest):
        return docs, ""
    # None came: the next page starts before the first item.
    last = cursor(rest[len(docs) - 1]) if docs else (-1, "")
    return docs, KeysetToken(order, False, limit, last).encode()


def carry_executions(
    answer: api_pb2.SubmitJobResponse | api_pb2.GetJobResponse | api_pb2.JobHistoryResponse,
    executions: Sequence[Execution],
) -> None:
    """Put the first of ``executions`` in ``answer`` as long as it stays under
    :data:`MAX_ANSWER_BYTES`, and the token of the rest in its ``executions_next_token``."""
    docs, answer.executions_next_token = execution_page(
        executions, budget=MAX_ANSWER_BYTES - answer.ByteSize(), at_least_one=False
    )
    answer.executions.extend(docs)


def _version(job: Job) -> Cursor:
    """A job version's place: its number (then its ID, the same for all)."""
    return job.version, job.id


def _created(execution: Execution) -> Cursor:
    """An execution's place in creation order (the store's: time, then ID)."""
    return execution.create_time, execution.id


def _token_after(request: api_pb2.ListJobsRequest, last: Job, kept: int) -> str:
    """The token of the jobs after ``last``, the ``kept``-th job of the page ``request``
    asked for: the same order, direction and page size (those of the request's token, when
    it has one)."""
    if request.next_token:
        # job_page has read it already: a token it refuses never gets here.
        token = JobListToken.decode(request.next_token)
        order, reverse, limit, offset = token.sort_by, token.reverse, token.limit, token.offset
    else:
        order = request.order_by.lower() or "created_at"
        reverse, limit, offset = request.reverse, request.limit, 0
    order = _ORDERS.get(order, order)
    cursor = (job_sort_value(last, order), last.id)
    return JobListToken(order, reverse, limit, offset + kept, cursor).encode()
