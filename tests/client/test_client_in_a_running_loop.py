"""The blocking clients called where an event loop already runs (a Jupyter notebook, an
async application): they work as in a script, on their own loop in a thread of their own."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bacalhau.client import Client, DataClient
from bacalhau.errors import NotFound
from bacalhau.models import JobStateType
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.client.test_client import docker_job


async def test_the_blocking_client_works_inside_a_running_loop(threaded: ServerThread) -> None:
    orch = threaded.orchestrator
    assert isinstance(orch, MemoryOrchestrator)
    asyncio.get_running_loop()  # as in a notebook cell
    with Client(threaded.url) as client:
        sub = client.submit(docker_job())
        ex = threaded.run(orch.start_execution(sub.job_id))
        threaded.run(orch.complete_execution(ex, stdout="done\n"))
        details = client.wait_for_job(sub.job_id, timeout=10)
        assert details.job.state == JobStateType.COMPLETED
        assert [j.id for j in client.list_jobs().items] == [sub.job_id]
        with pytest.raises(NotFound):
            client.get_job("j-none")
    # Closed: its loop's thread is gone, nothing left running.
    assert not [t for t in threading.enumerate() if t.name == "bacalhau-client-loop"]


def test_a_client_used_first_in_a_script_then_in_a_loop_keeps_working(
    threaded: ServerThread,
) -> None:
    """The same client, called from plain code and then from a coroutine (its connection
    pool goes with its loop to the thread)."""
    with Client(threaded.url) as client:
        job_id = client.submit(docker_job()).job_id

        async def in_a_loop() -> str:
            return client.get_job(job_id).job.id

        assert asyncio.run(in_a_loop()) == job_id
        assert client.get_job(job_id).job.id == job_id  # and from plain code again


async def test_the_blocking_data_client_works_inside_a_running_loop(
    threaded: ServerThread, tmp_path: Path
) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello\n")
    with DataClient(threaded.url) as data:
        cid = data.add(source, only_hash=True)
    assert cid.startswith("Qm")
