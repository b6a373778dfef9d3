"""The SDK against a real ApiServer: typed results, rebuilt errors, long-poll waiting."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest
from aiohttp import web

from bacalhau.client import AsyncClient, Client, WaitTimedOut
from bacalhau.errors import (
    BadQuery,
    ConflictJobState,
    InvalidJobSpec,
    JobNotFound,
    MultipleJobsFound,
    NotFound,
    Unavailable,
)
from bacalhau.models import (
    ExecutionStateType,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    Membership,
    SpecConfig,
    Task,
)
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.api.test_api_nodes_agent import add_compute


def docker_job(**labels: str) -> Job:
    return Job(
        type="batch",
        count=1,
        labels=dict(labels),
        tasks=[
            Task(
                name="main",
                engine=SpecConfig("docker", {"Image": "busybox:1.37.0"}),
                publisher=SpecConfig("local"),
            )
        ],
    )


async def test_jobs_round_trip(client: AsyncClient, orch: MemoryOrchestrator) -> None:
    sub = await client.submit(docker_job(team="a"))
    assert sub.job_id.startswith("j-") and sub.evaluation_id
    ex = await orch.start_execution(sub.job_id, node_id="n-x")
    await orch.complete_execution(ex, stdout="hello\n", exit_code=3)
    details = await client.get_job(sub.job_id[:10], history=True, executions=True)
    assert details.job.id == sub.job_id and details.job.state == JobStateType.COMPLETED
    (execution,) = details.executions
    # The client asks for v1.5.2 numbering, so Completed decodes exactly.
    assert execution.compute_state == ExecutionStateType.COMPLETED
    assert execution.run_output is not None and execution.run_output.exit_code == 3
    assert details.history[0].job_state_new == JobStateType.PENDING
    assert details.history[-1].type == HistoryType.JOB
    assert [e.id for e in await client.executions(sub.job_id)] == [ex]
    page = await client.history(sub.job_id, event_type="execution")
    assert page.items and page.next_token == ""
    assert page.items[-1].exec_state_new == ExecutionStateType.COMPLETED
    listed = await client.list_jobs(labels="team=a")
    assert [j.id for j in listed.items] == [sub.job_id]
    other = await client.submit(docker_job())
    assert await client.stop_job(other.job_id, "no longer needed")
    assert (await client.get_job(other.job_id)).job.state_message == "no longer needed"
    assert await client.results(sub.job_id) == []


async def test_nodes_and_agent(client: AsyncClient, orch: MemoryOrchestrator) -> None:
    add_compute(orch, "n-c1", 4, zone="a")
    nodes = await client.list_nodes(labels="zone=a")
    assert [n.info.node_id for n in nodes] == ["n-c1"]
    assert nodes[0].info.compute is not None and nodes[0].info.compute.available_capacity.cpu == 4
    assert nodes[0].membership == Membership.PENDING
    assert (await client.get_node("n-c")).info.node_id == "n-c1"
    assert await client.update_node("n-c1", "approve") == (True, "")
    assert await client.update_node("n-c1", "dance") == (False, "unsupported action")
    assert await client.agent_alive()
    assert (await client.agent_version()).git_version == "v1.5.2"
    me = await client.agent_node()
    assert me.info.node_id == "n-memory-requester" and me.membership == Membership.APPROVED


async def test_server_errors_come_back_as_their_classes(
    client: AsyncClient, orch: MemoryOrchestrator
) -> None:
    bad = docker_job()
    bad.tasks[0].engine.params = {}
    with pytest.raises(InvalidJobSpec) as spec_err:
        await client.submit(bad)
    assert spec_err.value.field == "Tasks[0].Engine.Params.Image"
    assert spec_err.value.hint
    with pytest.raises(InvalidJobSpec) as raw_err:
        await client.submit({"Type": "batch", "Tasks": "no"})
    assert raw_err.value.field == "Tasks"
    # Classes that share their code with a more general one come back as themselves.
    with pytest.raises(JobNotFound) as missing:
        await client.get_job("j-missing")
    assert "j-missing" in missing.value.message and missing.value.hint
    assert missing.value.component == "JobStore" and missing.value.code == "NotFound"
    with pytest.raises(BadQuery) as query_err:
        await client.list_jobs(order_by="colour")
    assert query_err.value.code == "BadRequest" and query_err.value.field == "order_by"
    await client.submit(docker_job())
    await client.submit(docker_job())
    with pytest.raises(MultipleJobsFound):
        await client.get_job("j-")
    done = await client.submit(docker_job())
    ex = await orch.start_execution(done.job_id)
    await orch.complete_execution(ex)
    with pytest.raises(ConflictJobState):
        await client.stop_job(done.job_id)


async def test_unreachable_server_is_unavailable_with_a_hint() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(Unavailable) as info:
            await client.agent_alive()
    assert f"127.0.0.1:{port}" in info.value.message
    assert "--api-host" in info.value.hint and "BACALHAU_API_PORT" in info.value.hint


async def test_wait_for_job_sees_completion_at_once(
    client: AsyncClient, orch: MemoryOrchestrator
) -> None:
    sub = await client.submit(docker_job())
    finished_at: list[float] = []

    async def run_job() -> None:
        await asyncio.sleep(0.3)
        ex = await orch.start_execution(sub.job_id)
        await asyncio.sleep(0.2)
        await orch.complete_execution(ex, stdout="done\n")
        finished_at.append(time.monotonic())

    events: list[JobHistory] = []
    task = asyncio.create_task(run_job())
    details = await client.wait_for_job(sub.job_id, timeout=30, on_event=events.append)
    returned = time.monotonic()
    await task
    assert details.job.state == JobStateType.COMPLETED
    assert details.executions[0].run_output is not None
    assert details.executions[0].run_output.stdout == "done\n"
    assert [e.seq_num for e in events] == list(range(1, len(events) + 1))
    assert events[-1].job_state_new == JobStateType.COMPLETED
    # Long-poll, not a polling interval: the wait ends right after the job does.
    assert returned - finished_at[0] < 0.25


async def test_wait_for_job_times_out(client: AsyncClient) -> None:
    sub = await client.submit(docker_job())
    start = time.monotonic()
    with pytest.raises(WaitTimedOut) as info:
        await client.wait_for_job(sub.job_id, timeout=0.5)
    assert 0.4 < time.monotonic() - start < 5
    assert info.value.hint and info.value.code == "TimeOut"


async def test_wait_for_job_on_the_real_orchestrator(real_client: AsyncClient) -> None:
    sub = await real_client.submit(docker_job())
    details = await real_client.wait_for_job(sub.job_id, timeout=30)
    # No compute node has joined: the scheduler fails the job, and the wait sees it.
    assert details.job.state == JobStateType.FAILED
    assert "not enough nodes" in details.job.state_message


def test_sync_facade(threaded: ServerThread) -> None:
    orch = threaded.orchestrator
    assert isinstance(orch, MemoryOrchestrator)
    with Client(threaded.url) as client:
        sub = client.submit(docker_job())
        ex = threaded.run(orch.start_execution(sub.job_id))
        threaded.run(orch.complete_execution(ex, stdout="sync\n"))
        details = client.wait_for_job(sub.job_id, timeout=10)
        assert details.job.state == JobStateType.COMPLETED
        assert client.get_job(sub.job_id).job.id == sub.job_id
        assert [j.id for j in client.list_jobs().items] == [sub.job_id]
        assert client.agent_alive()
        with pytest.raises(NotFound):
            client.get_job("j-none")


async def test_wait_for_job_polls_politely_without_the_long_poll_extension() -> None:
    """Upstream Bacalhau ignores ``wait``: the client must back off rather than spin."""
    calls: list[float] = []
    job = docker_job()
    job.id, job.state = "j-upstream", JobStateType.RUNNING

    async def history(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        done = len(calls) >= 4
        return web.json_response({"Items": [], "NextToken": "" if done else "dG9rZW4"})

    async def get_job(request: web.Request) -> web.Response:
        return web.json_response({"Job": job.to_dict()})

    app = web.Application()
    app.router.add_get("/api/v1/orchestrator/jobs/{id}/history", history)
    app.router.add_get("/api/v1/orchestrator/jobs/{id}", get_job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with AsyncClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            details = await client.wait_for_job("j-upstream", timeout=30)
    finally:
        await runner.cleanup()
    assert details.job.id == "j-upstream"
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.09 for gap in gaps), gaps


async def test_wait_for_job_asks_to_be_held_until_the_end() -> None:
    """Our server names the job's type in the history answer and holds a batch job's
    request until it ends: waiting costs one history request and the final GET."""
    history_calls: list[dict[str, str]] = []
    gets: list[str] = []
    job = docker_job()
    job.id, job.state = "j-held", JobStateType.COMPLETED

    async def history(request: web.Request) -> web.Response:
        history_calls.append(dict(request.query))
        held = request.query.get("until") == "terminal"
        return web.json_response(
            {
                "Items": [],
                "NextToken": "" if held or len(history_calls) >= 3 else "dG9rZW4",
                "Job": {"ID": job.id, "Type": "batch", "State": {"StateType": "Completed"}},
            }
        )

    async def get_job(request: web.Request) -> web.Response:
        gets.append(request.query.get("include", ""))
        return web.json_response({"Job": job.to_dict()})

    app = web.Application()
    app.router.add_get("/api/v1/orchestrator/jobs/{id}/history", history)
    app.router.add_get("/api/v1/orchestrator/jobs/{id}", get_job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with AsyncClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            details = await client.wait_for_job("j-held", timeout=30)
            # Someone following the events is answered at each change, as before.
            seen: list[JobHistory] = []
            await client.wait_for_job("j-held", timeout=30, on_event=seen.append)
    finally:
        await runner.cleanup()
    assert details.job.id == "j-held"
    assert history_calls[0].get("until") == "terminal" and float(history_calls[0]["wait"]) > 0
    assert len(history_calls) == 3
    assert not any("until" in call for call in history_calls[1:])
    assert gets == ["executions", "executions"]  # the type came with the history answer


async def test_wait_for_job_takes_the_finished_job_from_the_last_history_answer() -> None:
    """A server whose last history answer carries the finished job (``Details``) is asked
    for nothing more: waiting costs one request."""
    history_calls: list[dict[str, str]] = []
    gets: list[str] = []
    job = docker_job()
    job.id, job.state = "j-details", JobStateType.COMPLETED

    async def history(request: web.Request) -> web.Response:
        history_calls.append(dict(request.query))
        body = {
            "Items": [],
            "NextToken": "",
            "Job": {"ID": job.id, "Type": "batch", "State": {"StateType": "Completed"}},
        }
        if "executions" in request.query.get("include", ""):
            body["Details"] = {
                "Job": job.to_dict(),
                "Executions": {"Items": [{"ID": "e-1", "JobID": job.id}], "NextToken": ""},
            }
        return web.json_response(body)

    async def get_job(request: web.Request) -> web.Response:
        gets.append(request.query.get("include", ""))
        return web.json_response({"Job": job.to_dict()})

    app = web.Application()
    app.router.add_get("/api/v1/orchestrator/jobs/{id}/history", history)
    app.router.add_get("/api/v1/orchestrator/jobs/{id}", get_job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with AsyncClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            details = await client.wait_for_job("j-details", timeout=30)
    finally:
        await runner.cleanup()
    assert details.job.id == "j-details" and details.job.state == JobStateType.COMPLETED
    assert [e.id for e in details.executions] == ["e-1"]
    assert len(history_calls) == 1 and history_calls[0]["include"] == "executions"
    assert gets == []
