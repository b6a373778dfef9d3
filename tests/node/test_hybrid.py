"""A hybrid node (requester + compute in one process) and a second compute node joining it
over mutual-TLS gRPC: both wiring paths of the composition root, with real components."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from bacalhau.config import NodeConfig
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Job, JobStateType
from bacalhau.node import start_node


def _config(data_dir: Path, **kw: object) -> NodeConfig:
    base = NodeConfig(
        data_dir=data_dir,
        api_host="127.0.0.1",
        api_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        publisher_host="127.0.0.1",
        publisher_port=0,
        engines=("noop",),
        heartbeat_interval=0.5,
    )
    return base.with_overrides(kw)


def _job(count: int) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": count,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": {"Stdout": "hi\n"}}}],
        }
    )


async def test_hybrid_node_and_remote_compute(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    for name in ("hybrid", "compute"):
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )
    async with AsyncExitStack() as stack:
        hybrid = await start_node(
            _config(tmp_path / "hybrid", orchestrator=True, compute=True), stack
        )
        assert hybrid.orchestrator is not None and hybrid.heartbeat is not None
        await hybrid.heartbeat.wait_joined()
        remote = await start_node(
            _config(tmp_path / "compute", compute=True, orchestrator_address=hybrid.grpc_address),
            stack,
        )
        assert remote.heartbeat is not None
        await asyncio.wait_for(remote.heartbeat.wait_joined(), 10)

        orch = hybrid.orchestrator
        submitted = await orch.submit_job(_job(count=2))
        for _ in range(200):
            job = await orch.get_job(submitted.job_id)
            if job.state.is_terminal():
                break
            await orch.wait_for_change(job.id, after_seq=orch.store.last_seq(job.id), timeout=1)
        assert job.state == JobStateType.COMPLETED, job.state_message
        executions = await orch.list_executions(job.id)
        # Count 2 on two distinct nodes: one reached in-process, one over gRPC.
        assert {e.node_id for e in executions if e.run_output} == {
            hybrid.node_id,
            remote.node_id,
        }
        urls = [r.params["URL"] for r in await orch.job_results(job.id)]
        async with aiohttp.ClientSession() as session:
            for url in urls:
                async with session.get(url) as resp:
                    assert resp.status == 200
                    assert (await resp.read())[:2] == b"\x1f\x8b"  # a gzip'd tarball
