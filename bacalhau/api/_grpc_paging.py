"""ListJobs on the public gRPC API: REST's listing and paging tokens, with each answer kept
to a size every gRPC client reads.

gRPC clients refuse messages over 4 MiB unless told otherwise, and a job's document can be
megabytes (labels, an inline WASM module), so a page holds jobs up to
:data:`MAX_PAGE_BYTES` and its ``next_token`` goes on after the last job it holds, as a
token of the REST listing does (its keyset cursor); a job larger than that comes alone. REST
answers are not bounded: an HTTP body has no such limit.
"""

from __future__ import annotations

import asyncio

from bacalhau._proto.v1 import api_pb2
from bacalhau.api._grpc_convert import job_document
from bacalhau.api._jobs import job_page
from bacalhau.api._query import JobListToken
from bacalhau.models import Job
from bacalhau.orchestrator._api import OrchestratorAPI, job_sort_value

__all__ = ["MAX_PAGE_BYTES", "list_jobs"]

#: Most bytes of job documents in one ListJobs answer: room under the 4 MiB default for the
#: token and the framing.
MAX_PAGE_BYTES = 3 * 1024 * 1024
#: A repeated field's tag and length prefix, at most, per job.
_FRAMING = 6
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
    size = 0
    for n, job in enumerate(jobs):
        size += job.ByteSize() + _FRAMING
        if size > MAX_PAGE_BYTES and n > 0:
            return n
    return len(jobs)


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
