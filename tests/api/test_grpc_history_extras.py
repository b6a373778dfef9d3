"""The gRPC JobHistory's ``until`` and ``include_executions``: REST's ``until=terminal`` and
``include=executions`` (tests/api/test_api_history_until.py) over the public gRPC API."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_grpc_api import Client, memory, metadata

__all__ = ["memory"]


def history(job_id: str, **over: object) -> api_pb2.JobHistoryRequest:
    return api_pb2.JobHistoryRequest(job_id=job_id, **over)  # type: ignore[arg-type]


async def test_a_batch_job_is_held_until_it_ends_with_every_item(
    memory: Client, orch: MemoryOrchestrator
) -> None:
    job_id = await memory.submit()
    first = await memory.jobs.JobHistory(history(job_id))

    async def run_in_two_steps() -> None:
        await asyncio.sleep(0.1)
        ex = await orch.start_execution(job_id)
        await asyncio.sleep(0.2)
        await orch.complete_execution(ex, stdout="done\n")

    task = asyncio.create_task(run_in_two_steps())
    page = await memory.jobs.JobHistory(
        history(
            job_id,
            after_seq=first.next_after_seq,
            wait_seconds=20,
            until="terminal",
            include_executions=True,
        )
    )
    await task
    assert not page.more and page.job.state == "Completed"
    # Nothing between the first answer and the end is skipped: one call saw it all.
    everything = await memory.jobs.JobHistory(history(job_id))
    assert list(page.items) == [i for i in everything.items if i not in first.items]
    states = [json.loads(i.item_json).get("JobState", {}).get("New") for i in page.items]
    assert "Running" in states and "Completed" in states
    # The executions came with it, as ListExecutions gives them.
    listed = await memory.jobs.ListExecutions(api_pb2.ListExecutionsRequest(job_id=job_id))
    assert list(page.executions) == list(listed.executions)
    assert [e.compute_state for e in page.executions] == ["Completed"]
    assert json.loads(page.executions[0].execution_json)["RunOutput"]["Stdout"] == "done\n"


async def test_without_until_the_first_change_answers_and_executions_only_when_asked(
    memory: Client, orch: MemoryOrchestrator
) -> None:
    job_id = await memory.submit()
    first = await memory.jobs.JobHistory(history(job_id, include_executions=True))
    assert first.more and list(first.executions) == []  # none placed yet

    async def start_later() -> None:
        await asyncio.sleep(0.1)
        await orch.start_execution(job_id)

    task = asyncio.create_task(start_later())
    page = await memory.jobs.JobHistory(
        history(job_id, after_seq=first.next_after_seq, wait_seconds=20)
    )
    await task
    assert page.items and page.more and page.job.state == "Running"
    assert list(page.executions) == []


async def test_a_full_page_and_a_daemon_job_are_not_held(
    memory: Client, orch: MemoryOrchestrator
) -> None:
    job_id = await memory.submit()
    await orch.start_execution(job_id)  # a few items: more than a page of one
    full = await memory.jobs.JobHistory(history(job_id, limit=1, wait_seconds=20, until="terminal"))
    assert len(full.items) == 1 and full.more  # more to read: answered at once
    daemon = await memory.submit(Type="daemon")
    first = await memory.jobs.JobHistory(history(daemon))

    async def start_later() -> None:
        await asyncio.sleep(0.1)
        await orch.start_execution(daemon)

    task = asyncio.create_task(start_later())
    page = await memory.jobs.JobHistory(
        history(daemon, after_seq=first.next_after_seq, wait_seconds=20, until="TERMINAL")
    )
    await task
    # It runs until stopped: the answer comes with its first change, as without ``until``.
    assert page.items and page.more


async def test_an_unknown_until_is_invalid_argument_naming_the_field(memory: Client) -> None:
    job_id = await memory.submit()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await memory.jobs.JobHistory(history(job_id, until="completed"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    md = metadata(info.value)
    assert md["bacalhau-error-field"] == "until"
    assert md["bacalhau-error-code"] == "BadRequest"
