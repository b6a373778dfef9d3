"""ListJobs answers of large jobs stay readable by a gRPC client with the default 4 MiB limit:
a page ends before it outgrows 3 MiB, and its next_token goes on after its last job."""

from __future__ import annotations

import json

from bacalhau._proto.v1 import api_pb2
from bacalhau.api._grpc_paging import MAX_PAGE_BYTES
from tests.api.test_api_jobs import spec
from tests.api.test_grpc_api import Client, real

__all__ = ["real"]  # the fixture, used by name

MIB = 1024 * 1024


async def _submit(client: Client, name: str, label_bytes: int) -> str:
    job = spec(Name=name, Labels={"bulk": "x" * label_bytes} if label_bytes else {})
    resp = await client.jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))
    return resp.job_id


async def _pages(client: Client, **request: object) -> list[list[str]]:
    """Every page of the listing, as the IDs of its jobs."""
    pages: list[list[str]] = []
    token = ""
    while True:
        resp = await client.jobs.ListJobs(
            api_pb2.ListJobsRequest(next_token=token, **request)  # type: ignore[arg-type]
        )
        assert resp.ByteSize() < 4 * MIB or len(resp.jobs) == 1
        pages.append([j.id for j in resp.jobs])
        token = resp.next_token
        if not token:
            return pages
        assert len(pages) < 10


async def test_pages_of_large_jobs_fit_a_default_client(real: Client) -> None:
    huge = await _submit(real, "huge", MAX_PAGE_BYTES + MIB // 4)  # alone over the limit
    big1 = await _submit(real, "big1", 2 * MIB)
    big2 = await _submit(real, "big2", 2 * MIB)
    small = await _submit(real, "small", 0)
    assert await _pages(real) == [[huge], [big1], [big2, small]]
    assert await _pages(real, reverse=True) == [[small, big2], [big1], [huge]]
    # A page cut short keeps the asked size for the pages after it.
    assert await _pages(real, limit=3) == [[huge], [big1], [big2, small]]
    assert await _pages(real, limit=1) == [[huge], [big1], [big2], [small]]
    assert await _pages(real, order_by="id") == _cut_by_size(
        sorted([(huge, 3.25), (big1, 2), (big2, 2), (small, 0)])
    )


def _cut_by_size(jobs: list[tuple[str, float]]) -> list[list[str]]:
    """Pages of (ID, MiB) jobs in that order, as the size limit cuts them."""
    pages: list[list[str]] = []
    size = 0.0
    for job_id, mib in jobs:
        if pages and size + mib <= 3:
            pages[-1].append(job_id)
            size += mib
        else:
            pages.append([job_id])
            size = mib
    return pages


async def test_small_jobs_are_listed_as_before(real: Client) -> None:
    ids = [await _submit(real, f"s{i}", 0) for i in range(3)]
    assert await _pages(real) == [ids]
    assert await _pages(real, limit=2) == [ids[:2], ids[2:]]
    # A default client reads the listing of large jobs page by page, never all at once.
    await _submit(real, "big1", 2 * MIB)
    await _submit(real, "big2", 2 * MIB)
    first = await real.jobs.ListJobs(api_pb2.ListJobsRequest())
    assert [j.id for j in first.jobs][:3] == ids and first.next_token
    assert first.ByteSize() <= MAX_PAGE_BYTES
