"""Submit and wait in one request: ``PUT /jobs?wait=<s>`` (our extension; gRPC's
``SubmitJob.wait_seconds``) holds the answer until a batch or ops job ends and answers with
the finished job; both SDK clients' ``submit_and_wait`` use it, and go on waiting when the job
outlasts it or the server does not know the extension. Against a real node (a hybrid
requester + compute node in this process, noop engine)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bacalhau._proto.v1 import api_pb2
from bacalhau.client import AsyncClient, AsyncGrpcClient, WaitTimedOut
from bacalhau.errors import BacalhauError
from bacalhau.models import JobStateType
from bacalhau.node import RunningNode, start_node
from tests.client.hybrid import hybrid_config

JOBS = "/api/v1/orchestrator/jobs"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    config = hybrid_config(tmp_path)
    async with AsyncExitStack() as stack:
        yield await start_node(config, stack)


@pytest.fixture
def api(node: RunningNode) -> str:
    return f"http://127.0.0.1:{node.api_port}"


def _job(kind: str = "batch", **params: Any) -> dict[str, Any]:
    return {
        "Type": kind,
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": params}}],
    }


async def test_a_submit_that_waits_answers_with_the_finished_job(api: str) -> None:
    async with (
        aiohttp.ClientSession(api) as http,
        http.put(
            JOBS, params={"wait": "30", "include": "executions"}, json={"Job": _job(Stdout="hi\n")}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    details = body["Details"]
    assert body["JobID"] and details["Job"]["ID"] == body["JobID"]
    assert details["Job"]["State"]["StateType"] == "Completed"
    [execution] = details["Executions"]["Items"]
    assert execution["RunOutput"]["Stdout"] == "hi\n"


async def test_the_sdk_submits_and_waits(api: str) -> None:
    async with AsyncClient(api) as client:
        submitted, details = await client.submit_and_wait(_job(Stdout="out\n"), timeout=30)
        assert details.job.id == submitted.job_id
        assert details.job.state == JobStateType.COMPLETED, details.job.state_message
        assert [e.run_output.stdout for e in details.executions if e.run_output] == ["out\n"]


async def test_a_job_that_outlasts_the_wait_is_answered_without_it(api: str) -> None:
    async with aiohttp.ClientSession(api) as http:
        start = time.monotonic()
        async with http.put(
            JOBS, params={"wait": "0.3"}, json={"Job": _job(SleepSeconds=1.5)}
        ) as resp:
            body = await resp.json()
        assert 0.25 < time.monotonic() - start < 1.4
        assert body["JobID"] and "Details" not in body
    # The SDK goes on waiting for it, and within its own limit only.
    async with AsyncClient(api) as client:
        _, details = await client.submit_and_wait(_job(SleepSeconds=0.5), timeout=30)
        assert details.job.state == JobStateType.COMPLETED
        with pytest.raises(WaitTimedOut):
            await client.submit_and_wait(_job(SleepSeconds=5), timeout=0.3)


async def test_a_daemon_job_is_answered_at_once(api: str) -> None:
    async with aiohttp.ClientSession(api) as http:
        start = time.monotonic()
        async with http.put(JOBS, params={"wait": "20"}, json={"Job": _job("daemon")}) as resp:
            body = await resp.json()
        assert time.monotonic() - start < 5
        assert body["JobID"] and "Details" not in body


async def test_a_bad_wait_is_refused_before_the_job_is_submitted(api: str) -> None:
    async with aiohttp.ClientSession(api) as http:
        for wait in ("-1", "soon", "nan"):
            async with http.put(JOBS, params={"wait": wait}, json={"Job": _job()}) as resp:
                assert resp.status == 400
                error = await resp.json()
                assert error["Code"] == "BadRequest" and "wait" in error["Message"]
        async with http.get(JOBS) as resp:
            assert (await resp.json())["Items"] == []


async def test_a_server_without_the_extension_is_waited_on_as_before() -> None:
    """Upstream Bacalhau answers the submit at once: the SDK then waits by the history."""
    calls: list[str] = []
    job_id = "j-upstream"

    async def put_job(request: web.Request) -> web.Response:
        calls.append("PUT")
        return web.json_response({"JobID": job_id, "EvaluationID": "ev-1", "Warnings": []})

    async def history(request: web.Request) -> web.Response:
        calls.append("history")
        return web.json_response(
            {
                "Items": [],
                "NextToken": "",
                "Job": {"ID": job_id, "Type": "batch", "State": {"StateType": "Completed"}},
            }
        )

    async def get_job(request: web.Request) -> web.Response:
        calls.append("GET")
        job = _job()
        job.update(ID=job_id, Name=job_id, Namespace="default", State={"StateType": "Completed"})
        return web.json_response({"Job": job})

    app = web.Application()
    app.router.add_put(JOBS, put_job)
    app.router.add_get(JOBS + "/{id}/history", history)
    app.router.add_get(JOBS + "/{id}", get_job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with AsyncClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            submitted, details = await client.submit_and_wait(_job(), timeout=30)
    finally:
        await runner.cleanup()
    assert submitted.job_id == details.job.id == job_id
    assert details.job.state == JobStateType.COMPLETED
    assert calls == ["PUT", "history", "GET"]


async def test_the_grpc_client_submits_and_waits_in_one_call(node: RunningNode) -> None:
    async with AsyncGrpcClient(f"127.0.0.1:{node.api_grpc_port}") as client:
        submitted, details = await client.submit_and_wait(_job(Stdout="grpc\n"), timeout=30)
        assert details.job.id == submitted.job_id
        assert details.job.state == JobStateType.COMPLETED, details.job.state_message
        assert [e.run_output.stdout for e in details.executions if e.run_output] == ["grpc\n"]
        # A job outlasting a short wait: waited on after the submit's answer, within limits.
        _, later = await client.submit_and_wait(_job(SleepSeconds=0.5), timeout=30)
        assert later.job.state == JobStateType.COMPLETED
        with pytest.raises(WaitTimedOut):
            await client.submit_and_wait(_job(SleepSeconds=5), timeout=0.3)
        for wait in (-1.0, float("nan")):
            with pytest.raises(BacalhauError) as refused:
                await client._call(
                    client._job_service.SubmitJob,
                    api_pb2.SubmitJobRequest(job_json=json.dumps(_job()), wait_seconds=wait),
                )
            assert "wait" in refused.value.message
        assert len((await client.list_jobs()).items) == 3  # the refused ones left none
