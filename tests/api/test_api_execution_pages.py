"""``GET /jobs/{id}/executions`` pages: a page cut by ``limit`` ends with a NextToken that
goes on after its last execution, in the order and size it was made with (Bacalhau cuts at
``limit`` and leaves no way to the rest)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_jobs import JOBS, error_of, submit


async def _page(http: aiohttp.ClientSession, job_id: str, **params: Any) -> tuple[list[str], str]:
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    async with http.get(f"{JOBS}/{job_id}/executions", params=query) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return [e["ID"] for e in body["Items"]], body["NextToken"]


async def _all_pages(http: aiohttp.ClientSession, job_id: str, **params: Any) -> list[list[str]]:
    pages = []
    ids, token = await _page(http, job_id, **params)
    pages.append(ids)
    while token:
        ids, token = await _page(http, job_id, next_token=token)
        pages.append(ids)
        assert len(pages) < 10
    return pages


async def _job_with_executions(orch: MemoryOrchestrator, job_id: str, n: int) -> list[str]:
    return [await orch.start_execution(job_id, node_id=f"n-{i}") for i in range(n)]


async def test_pages_go_on_in_the_order_and_size_they_were_asked_in(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    made = await _job_with_executions(orch, job_id, 5)
    assert await _all_pages(http, job_id) == [made]  # no limit: one page, no token
    assert await _all_pages(http, job_id, limit=2) == [made[:2], made[2:4], made[4:]]
    newest_first = list(reversed(made))
    assert await _all_pages(http, job_id, limit=3, reverse=True) == [
        newest_first[:3],
        newest_first[3:],
    ]
    by_id = sorted(made)
    assert await _all_pages(http, job_id, limit=2, order_by="id") == [
        by_id[:2],
        by_id[2:4],
        by_id[4:],
    ]
    # A limit as large as what is left ends the listing.
    assert await _all_pages(http, job_id, limit=5) == [made]


async def test_an_execution_created_between_pages_comes_once(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    made = await _job_with_executions(orch, job_id, 3)
    first, token = await _page(http, job_id, limit=2)
    assert first == made[:2] and token
    late = await orch.start_execution(job_id, node_id="n-late")
    rest, token = await _page(http, job_id, next_token=token)
    assert rest == [made[2], late] and token == ""


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        # A job list token of Bacalhau's shape, without a cursor: not one of this listing.
        base64.urlsafe_b64encode(b"created_at:N:2:0").decode().rstrip("="),
        base64.urlsafe_b64encode(b"node:N:2:0:5:e-1").decode().rstrip("="),
    ],
)
async def test_a_token_it_did_not_make_is_a_400_naming_the_field(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator, token: str
) -> None:
    job_id = await submit(http)
    await _job_with_executions(orch, job_id, 1)
    async with http.get(f"{JOBS}/{job_id}/executions", params={"next_token": token}) as r:
        assert r.status == 400
        err = await error_of(r)
    assert err["Details"]["Field"] == "next_token", err
    assert "next_token" in err["Message"]
