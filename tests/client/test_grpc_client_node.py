"""The SDK's gRPC client against a real node (a hybrid requester + compute node in this
process, noop engine): a job's output comes back line by line through the log stream, both
after the end and followed while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bacalhau.client import AsyncClient, AsyncGrpcClient, LogLine
from bacalhau.models import JobStateType, LogStream
from bacalhau.node import start_node
from tests.client.hybrid import hybrid_config


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncGrpcClient]:
    config = hybrid_config(tmp_path)
    async with AsyncExitStack() as stack:
        node = await start_node(config, stack)
        assert node.api_grpc_port > 0
        async with AsyncGrpcClient(f"127.0.0.1:{node.api_grpc_port}") as c:
            yield c


def _job(**params: Any) -> dict[str, Any]:
    return {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": params}}],
    }


async def test_logs_of_a_finished_job_line_by_line(client: AsyncGrpcClient) -> None:
    job_id = (await client.submit(_job(Stdout="one\ntwo\nno newline", Stderr="oops\n"))).job_id
    done = await client.wait_for_job(job_id, timeout=30)
    assert done.job.state == JobStateType.COMPLETED, done.job.state_message
    lines = [line async for line in client.logs(job_id)]
    assert [line.text for line in lines if line.stream == LogStream.STDOUT] == [
        "one\n",
        "two\n",
        "no newline",
    ]
    assert [line.text for line in lines if line.stream == LogStream.STDERR] == ["oops\n"]
    tail = [line async for line in client.logs(job_id, tail=1)]
    assert LogLine(LogStream.STDOUT, "no newline") in tail
    assert LogLine(LogStream.STDOUT, "one\n") not in tail


async def test_following_logs_ends_with_the_execution(client: AsyncGrpcClient) -> None:
    job_id = (await client.submit(_job(Stdout="started\n", SleepSeconds=1.5))).job_id

    async def until_running() -> None:
        token = ""
        while True:
            page = await client.history(job_id, next_token=token, wait=10)
            assert page.job is not None and page.next_token, "ended before it was followed"
            if page.job.state == JobStateType.RUNNING:
                return
            token = page.next_token

    await asyncio.wait_for(until_running(), 30)
    followed = [line async for line in client.logs(job_id, follow=True)]
    assert followed == [LogLine(LogStream.STDOUT, "started\n")]
    # The stream ended on its own because the execution did.
    assert (await client.wait_for_job(job_id, timeout=30)).job.state == JobStateType.COMPLETED


async def test_describe_node_and_agent_config_say_what_rest_says(tmp_path: Path) -> None:
    """The gRPC client's node description and configuration are the REST client's, secrets
    redacted alike (a probe URL carrying a token)."""
    config = hybrid_config(tmp_path).with_overrides(
        {"probe_http": "http://prober.invalid/ok?token=s3cret"}
    )
    async with AsyncExitStack() as stack:
        node = await start_node(config, stack)
        async with (
            AsyncGrpcClient(f"127.0.0.1:{node.api_grpc_port}") as grpc_client,
            AsyncClient(f"http://127.0.0.1:{node.api_port}") as rest,
        ):
            over_grpc = await grpc_client.agent_config()
            assert over_grpc == await rest.agent_config()
            assert over_grpc["JobAdmissionControl"]["Locality"]
            own = (await grpc_client.agent_node()).info.node_id
            described = await grpc_client.describe_node(own)
            by_rest = await rest.describe_node(own)
            # (LastSeen is the requester's clock at each answer.)
            assert {**described, "LastSeen": ""} == {**by_rest, "LastSeen": ""}
            assert "ApprovalHooks" in described["Orchestrator"]
            assert "JobAdmissionControl" in described
    assert "s3cret" not in repr(over_grpc) + repr(described)
