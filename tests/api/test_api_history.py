"""Job history: filters, paging tokens that outlive new items, and the long-poll."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bacalhau.api import ApiServer
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_jobs import JOBS, submit


async def history(http: aiohttp.ClientSession, job_id: str, **params: str) -> dict:  # type: ignore[type-arg]
    async with http.get(f"{JOBS}/{job_id}/history", params=params) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_filters_and_merged_item_shape(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    ex = await orch.start_execution(job_id, node_id="n-alpha")
    await orch.complete_execution(ex, stdout="ok")
    everything = await history(http, job_id)
    items = everything["Items"]
    assert [i["SeqNum"] for i in items] == sorted(i["SeqNum"] for i in items)
    assert everything["NextToken"] == ""  # terminal and complete
    job_items = (await history(http, job_id, event_type="job"))["Items"]
    assert job_items and all(i["Type"] == "JobLevel" and "JobState" in i for i in job_items)
    exec_items = (await history(http, job_id, event_type="execution"))["Items"]
    assert exec_items and all(i["Type"] == "ExecutionLevel" for i in exec_items)
    last = exec_items[-1]
    assert last["ExecutionID"] == ex and last["NodeID"] == "n-alpha"
    assert last["ExecutionState"] == {"Previous": 5, "New": 7}
    assert isinstance(last["Time"], str) and last["Time"].endswith("Z")
    assert last["NewRevision"] >= 1 and last["Event"]["Topic"] == "Execution"
    assert (await history(http, job_id, execution_id=ex[:6]))["Items"] == exec_items
    assert (await history(http, job_id, node_id="n-al"))["Items"] == exec_items
    assert (await history(http, job_id, node_id="n-beta"))["Items"] == []
    assert (await history(http, job_id, since=str(int(time.time()) + 3600)))["Items"] == []
    # Python SDK defaults: event_type=execution plus empty parameters.
    py = await history(http, job_id, event_type="execution", node_id="", execution_id="")
    assert py["Items"] == exec_items
    for params, field in (
        ({"event_type": "node"}, "event_type"),
        ({"since": "-1"}, "since"),
        ({"wait": "soon"}, "wait"),
        ({"until": "completed"}, "until"),  # as gRPC's JobHistory refuses it
    ):
        async with http.get(f"{JOBS}/{job_id}/history", params=params) as r:
            assert r.status == 400
            assert (await r.json())["Details"]["Field"] == field


async def test_token_stays_set_until_terminal_and_pages(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    first = await history(http, job_id, limit="10")
    assert len(first["Items"]) == 1 and first["NextToken"]
    # Nothing new yet: still a token, no items.
    idle = await history(http, job_id, next_token=first["NextToken"])
    assert idle["Items"] == [] and idle["NextToken"]
    ex = await orch.start_execution(job_id)
    await orch.complete_execution(ex)
    seen = list(first["Items"])
    token = idle["NextToken"]
    limited = await history(http, job_id, limit="2")
    assert len(limited["Items"]) == 2 and limited["NextToken"]
    while token:
        page = await history(http, job_id, next_token=token)
        seen += page["Items"]
        token = page["NextToken"]
    assert [i["SeqNum"] for i in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["JobState"]["New"] == "Completed"


async def test_token_for_an_execution_ends_when_it_does(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    ex = await orch.start_execution(job_id)
    assert (await history(http, job_id, execution_id=ex))["NextToken"]
    await orch.complete_execution(ex, complete_job=False)
    assert (await history(http, job_id, execution_id=ex))["NextToken"] == ""
    assert (await history(http, job_id))["NextToken"]  # the job itself is still running


async def test_long_poll_answers_as_soon_as_something_happens(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    token = (await history(http, job_id))["NextToken"]
    done_at: list[float] = []

    async def finish_later() -> None:
        await asyncio.sleep(0.3)
        ex = await orch.start_execution(job_id)
        await orch.complete_execution(ex)
        done_at.append(time.monotonic())

    task = asyncio.create_task(finish_later())
    start = time.monotonic()
    page = await history(http, job_id, next_token=token, wait="20")
    answered = time.monotonic()
    await task
    assert page["Items"], "the long-poll returned without the new items"
    assert 0.25 < answered - start < 5.0
    # Execution-level filter: job-level items alone must not end a filtered wait early.
    job2 = await submit(http)
    token2 = (await history(http, job2, event_type="execution"))["NextToken"]

    async def job_level_then_execution() -> None:
        await asyncio.sleep(0.2)
        await orch.stop_job(job2, "stop")  # job-level item only (no executions)

    task2 = asyncio.create_task(job_level_then_execution())
    page2 = await history(http, job2, next_token=token2, event_type="execution", wait="20")
    await task2
    assert page2["Items"] == [] and page2["NextToken"] == ""  # terminal: nothing more to wait for


async def test_long_poll_times_out_with_a_token(http: aiohttp.ClientSession) -> None:
    job_id = await submit(http)
    token = (await history(http, job_id))["NextToken"]
    start = time.monotonic()
    page = await history(http, job_id, next_token=token, wait="0.3")
    assert 0.25 < time.monotonic() - start < 5.0
    assert page["Items"] == [] and page["NextToken"]


async def test_stopping_the_server_ends_long_polls_promptly() -> None:
    orch = MemoryOrchestrator()
    server = ApiServer(orch, host="127.0.0.1", port=0)
    await server.start()
    async with aiohttp.ClientSession(base_url=server.url) as http:
        job_id = await submit(http)
        token = (await history(http, job_id))["NextToken"]
        poll = asyncio.create_task(history(http, job_id, next_token=token, wait="30"))
        await asyncio.sleep(0.2)
        start = time.monotonic()
        await server.stop()
        page = await asyncio.wait_for(poll, 10)
        assert time.monotonic() - start < 3.0
        assert page["Items"] == [] and page["NextToken"]
