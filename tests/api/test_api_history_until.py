"""``until=terminal``: a client waiting for a job's end makes one history request, not one
per change; the answer names the job's type."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_history import history
from tests.api.test_api_jobs import JOBS, submit


async def test_a_batch_job_is_held_until_it_ends_with_every_item(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    first = await history(http, job_id)

    async def run_in_two_steps() -> None:
        await asyncio.sleep(0.1)
        ex = await orch.start_execution(job_id)
        await asyncio.sleep(0.2)
        await orch.complete_execution(ex)

    task = asyncio.create_task(run_in_two_steps())
    page = await history(http, job_id, next_token=first["NextToken"], wait="20", until="terminal")
    await task
    assert page["NextToken"] == ""
    assert page["Job"]["State"]["StateType"] == "Completed"
    # Nothing between the first answer and the end is skipped.
    everything = await history(http, job_id)
    after_first = [i for i in everything["Items"] if i not in first["Items"]]
    assert page["Items"] == after_first
    assert any(i.get("JobState", {}).get("New") == "Running" for i in page["Items"])
    assert page["Job"]["Type"] == "batch"


async def test_the_wait_still_ends_and_a_full_page_is_answered(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    token = (await history(http, job_id))["NextToken"]
    await orch.start_execution(job_id)
    page = await history(http, job_id, next_token=token, wait="0.3", until="terminal")
    assert page["Items"] and page["NextToken"]  # not terminal: the wait ended
    full = await history(http, job_id, limit="1", wait="20", until="terminal")
    assert len(full["Items"]) == 1 and full["NextToken"]  # more to read: answered at once


async def test_a_daemon_job_is_not_held(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http, Type="daemon")
    first = await history(http, job_id)
    assert first["Job"]["Type"] == "daemon"

    async def start_later() -> None:
        await asyncio.sleep(0.1)
        await orch.start_execution(job_id)

    task = asyncio.create_task(start_later())
    page = await history(http, job_id, next_token=first["NextToken"], wait="20", until="terminal")
    await task
    # It runs until stopped: the answer comes with its first change, as without ``until``.
    assert page["Items"] and page["NextToken"]


async def test_the_last_answer_carries_the_finished_job_when_asked(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    """``include=executions``: the end of the wait brings what ``GET /jobs/{id}`` would, so a
    waiting client makes no further request; answers before the end carry nothing more."""
    job_id = await submit(http)
    first = await history(http, job_id, include="executions")
    assert first["NextToken"] and "Details" not in first
    ex = await orch.start_execution(job_id)
    await orch.complete_execution(ex, stdout="done\n")
    page = await history(
        http,
        job_id,
        next_token=first["NextToken"],
        wait="20",
        until="terminal",
        include="executions",
    )
    assert page["NextToken"] == "" and page["Job"]["State"]["StateType"] == "Completed"
    async with http.get(f"{JOBS}/{job_id}", params={"include": "executions"}) as r:
        assert page["Details"] == await r.json()
    assert page["Details"]["Executions"]["Items"][0]["RunOutput"]["Stdout"] == "done\n"
    # Not asked for: the answer stays as before.
    assert "Details" not in await history(http, job_id)
