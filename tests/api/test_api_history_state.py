"""The history answer carries the job's state, so a client following it needs no GET."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_history import history
from tests.api.test_api_jobs import submit


async def test_long_poll_answers_with_the_jobs_state(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    first = await history(http, job_id)
    assert first["Job"]["ID"] == job_id
    assert first["Job"]["State"]["StateType"] == "Pending"

    async def finish_later() -> None:
        await asyncio.sleep(0.2)
        ex = await orch.start_execution(job_id)
        await orch.complete_execution(ex)

    task = asyncio.create_task(finish_later())
    page = await history(http, job_id, next_token=first["NextToken"], wait="20")
    await task
    assert page["Items"]
    job = page["Job"]
    assert job["ID"] == job_id and job["Revision"] >= first["Job"]["Revision"]
    if not page["NextToken"]:
        assert job["State"]["StateType"] == "Completed"
    last = await history(http, job_id)
    assert last["NextToken"] == "" and last["Job"]["State"]["StateType"] == "Completed"
