"""A hybrid node (requester + compute in one process) and a second compute node that seeds
its gossip through it, over mutual-TLS gRPC: both wiring paths of the composition root, with
real components. The requester learns of the remote node only through gossip."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from bacalhau.config import NodeConfig
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Connection, Job, JobStateType
from bacalhau.node import RunningNode, start_node
from tests.client.hybrid import hybrid_node_config

#: Faster than the defaults so tests take seconds; the protocol is the same.
_FAST_GOSSIP: dict[str, object] = {
    "gossip_probe_interval": 0.2,
    "gossip_probe_timeout": 0.1,
    "gossip_suspicion_min_seconds": 0.6,
    "gossip_join_retry_interval": 0.2,
}


def _config(data_dir: Path, **kw: object) -> NodeConfig:
    """A node on free loopback ports with the roles ``kw`` gives it, gossiping fast."""
    overrides = {"orchestrator": False, "compute": False, **_FAST_GOSSIP, **kw}
    return hybrid_node_config(data_dir, **overrides)


async def until(probe: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait until ``probe()`` is true (polled every 50 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
        await asyncio.sleep(0.05)


def sees(requester: RunningNode, node_id: str) -> bool:
    """Whether the requester's node directory has ``node_id`` as a usable compute node."""
    assert requester.orchestrator is not None
    return any(
        n.info.node_id == node_id and n.connection == Connection.CONNECTED
        for n in requester.orchestrator.nodes.compute_nodes()
    )


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
        assert hybrid.orchestrator is not None
        remote = await start_node(
            _config(tmp_path / "compute", compute=True, seeds=hybrid.grpc_address), stack
        )
        assert remote.compute is not None
        compute = remote.compute
        await until(lambda: sees(hybrid, remote.node_id), "the requester seeing the node")
        await until(lambda: compute.trust.is_trusted(hybrid.node_id), "trusting the requester")

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
