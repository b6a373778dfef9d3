"""The public gRPC API on a real devstack: a WASM job submitted over gRPC runs on a compute
node process, its end is awaited through the history long-poll, and its output streamed back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc, logs_pb2
from bacalhau.cli._wasm import inline_module
from tests.integration.devstack import Devstack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-grpc-api")]


async def test_wasm_job_over_grpc_completes_and_streams_its_output(
    devstack: Devstack, wasm_modules: Path
) -> None:
    address = devstack.manifest["GRPCAPIAddress"]
    assert address and address != devstack.api_address
    job = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "wasm",
                    "Params": {
                        "EntryModule": inline_module(wasm_modules / "hello.wasm"),
                        "EntryPoint": "_start",
                        "Parameters": ["over-grpc"],
                    },
                },
            }
        ],
    }
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = api_pb2_grpc.JobServiceStub(channel)
        submitted = await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))

        async def until_done() -> api_pb2.JobHistoryResponse:
            after = 0
            while True:
                page = await jobs.JobHistory(
                    api_pb2.JobHistoryRequest(
                        job_id=submitted.job_id, after_seq=after, wait_seconds=10
                    )
                )
                after = page.next_after_seq
                if not page.more:
                    return page

        last = await asyncio.wait_for(until_done(), 60)
        assert last.job.state == "Completed", last.job.state_message

        stdout, stderr = bytearray(), bytearray()
        async for chunk in jobs.StreamJobLogs(
            api_pb2.StreamJobLogsRequest(job_id=submitted.job_id)
        ):
            if chunk.stream == logs_pb2.LOG_STREAM_TYPE_STDOUT:
                stdout += chunk.data
            else:
                assert chunk.stream == logs_pb2.LOG_STREAM_TYPE_STDERR
                stderr += chunk.data
        assert stdout.decode() == "hello from wasm\narg[1]=over-grpc\n"
        assert stderr.decode() == "hello on stderr\n"

        execs = await jobs.ListExecutions(api_pb2.ListExecutionsRequest(job_id=submitted.job_id))
        assert [e.compute_state for e in execs.executions] == ["Completed"]
        nodes = api_pb2_grpc.NodeAPIServiceStub(channel)
        listed = await nodes.ListNodes(api_pb2.ListNodesRequest())
        assert execs.executions[0].node_id in [n.id for n in listed.nodes]


async def test_following_logs_over_grpc_ends_with_the_execution(
    devstack: Devstack, wasm_modules: Path
) -> None:
    job = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "wasm",
                    "Params": {
                        "EntryModule": inline_module(wasm_modules / "sleeper.wasm"),
                        "EntryPoint": "_start",
                        "Parameters": ["2"],
                    },
                },
            }
        ],
    }
    async with grpc.aio.insecure_channel(devstack.manifest["GRPCAPIAddress"]) as channel:
        jobs = api_pb2_grpc.JobServiceStub(channel)
        submitted = await jobs.SubmitJob(api_pb2.SubmitJobRequest(job_json=json.dumps(job)))

        async def until_running() -> None:
            after = 0
            while True:
                page = await jobs.JobHistory(
                    api_pb2.JobHistoryRequest(
                        job_id=submitted.job_id, after_seq=after, wait_seconds=10
                    )
                )
                after = page.next_after_seq
                assert page.more, page.job.state_message  # ended before it was followed
                if page.job.state == "Running":
                    return

        await asyncio.wait_for(until_running(), 60)

        async def follow() -> bytes:
            out = bytearray()
            async for chunk in jobs.StreamJobLogs(
                api_pb2.StreamJobLogsRequest(job_id=submitted.job_id, follow=True)
            ):
                if chunk.stream == logs_pb2.LOG_STREAM_TYPE_STDOUT:
                    out += chunk.data
            return bytes(out)

        # The stream ends on its own once the execution does (2 s of sleep).
        assert await asyncio.wait_for(follow(), 60) == b"sleeping 2\nwoke up\n"
        done = await jobs.GetJob(api_pb2.GetJobRequest(job_id=submitted.job_id))
        assert done.job.state == "Completed"
