"""Real nodes wired by the composition root, meeting only through gossip: a compute node's
record follows its capacity to the requester, and records the cluster must not believe
(forged, stale, about another node) and messages sent in another node's name are refused,
counted and shown by the agent API."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from bacalhau.errors import PermissionDenied
from bacalhau.gossip import Gossip, NodeRecord, Outbound, seal_record, signing_input
from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import Job, JobStateType, NodeType
from bacalhau.node import RunningNode, start_node
from bacalhau.transport import MEMBER_RECORD_CODEC, MembershipClient
from tests.node.test_hybrid import _config, sees, until


def _certify(tmp_path: Path, *names: str) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    for name in names:
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )


def _sleeper(seconds: float) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "noop", "Params": {"SleepSeconds": seconds}},
                    "Resources": {"CPU": "100m", "Memory": "10Mb"},
                }
            ],
        }
    )


def _running_on(requester: RunningNode, node_id: str) -> int:
    """How many executions the requester's view says run on ``node_id`` (from its record)."""
    assert requester.orchestrator is not None
    node = requester.orchestrator.nodes.get(node_id)
    assert node.info.compute is not None
    return node.info.compute.running_executions


async def test_a_capacity_change_reaches_the_requester_in_the_nodes_record(
    tmp_path: Path,
) -> None:
    _certify(tmp_path, "requester", "compute")
    async with AsyncExitStack() as stack:
        requester = await start_node(_config(tmp_path / "requester", orchestrator=True), stack)
        compute = await start_node(
            _config(tmp_path / "compute", compute=True, seeds=requester.grpc_address), stack
        )
        await until(lambda: sees(requester, compute.node_id), "the requester seeing the node")
        assert requester.orchestrator is not None and compute.compute is not None
        endpoint = compute.compute
        await until(lambda: endpoint.trust.is_trusted(requester.node_id), "trust")
        assert _running_on(requester, compute.node_id) == 0

        orch = requester.orchestrator
        job_id = (await orch.submit_job(_sleeper(1.5))).job_id
        await until(lambda: _running_on(requester, compute.node_id) == 1, "running: 1")
        for _ in range(100):
            job = await orch.get_job(job_id)
            if job.state.is_terminal():
                break
            await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=1)
        assert job.state == JobStateType.COMPLETED, job.state_message
        await until(lambda: _running_on(requester, compute.node_id) == 0, "running: 0")


async def test_forged_stale_and_misattributed_records_are_counted_in_agent_debug(
    tmp_path: Path,
) -> None:
    _certify(tmp_path, "requester", "compute", "member")
    async with AsyncExitStack() as stack:
        requester = await start_node(_config(tmp_path / "requester", orchestrator=True), stack)
        compute = await start_node(
            _config(tmp_path / "compute", compute=True, seeds=requester.grpc_address), stack
        )
        await until(lambda: sees(requester, compute.node_id), "the requester seeing the node")
        assert compute.membership is not None
        genuine = compute.membership.local_record
        compute_key = NodeIdentity.load(tmp_path / "compute")
        member_key = NodeIdentity.load(tmp_path / "member")

        # 1. Forged: the compute node's record, "signed" by another key.
        forged = seal_record(
            member_key,
            MEMBER_RECORD_CODEC,
            dataclasses.replace(genuine, node_id=member_key.node_id, version=genuine.version + 9),
        )
        forged = dataclasses.replace(forged, node_id=compute.node_id)
        # 2. Stale: a genuine record of the compute node, older than the one held (a replay).
        stale = seal_record(
            compute_key, MEMBER_RECORD_CODEC, dataclasses.replace(genuine, version=1)
        )
        # 3. About another node: signed by the member, claiming to describe the compute node
        # (the unsigned hint says it is the member's, the signed content does not).
        lie = NodeRecord(
            node_id=compute.node_id,
            version=time.time_ns(),
            roles=frozenset({NodeType.REQUESTER}),
            grpc_address="127.0.0.1:1",
        )
        payload = MEMBER_RECORD_CODEC.encode(lie)
        other = seal_record(
            member_key,
            MEMBER_RECORD_CODEC,
            dataclasses.replace(lie, node_id=member_key.node_id),
        )
        misattributed = dataclasses.replace(
            other,
            payload=payload,
            signature=member_key.sign(signing_input(MEMBER_RECORD_CODEC.type_name, payload)),
        )
        async with MembershipClient(member_key, NodeFiles.in_dir(tmp_path / "member")) as net:
            await net.send(
                Outbound(
                    requester.node_id,
                    requester.grpc_address,
                    Gossip((forged, stale, misattributed)),
                )
            )

        # 4. A message whose named sender is not the TLS peer never reaches the core.
        async with MembershipClient(compute_key, NodeFiles.in_dir(tmp_path / "member")) as net:
            with pytest.raises(PermissionDenied):
                await net.send(Outbound(requester.node_id, requester.grpc_address, Gossip(())))

        url = f"http://127.0.0.1:{requester.api_port}/api/v1/agent/debug"
        async with aiohttp.ClientSession() as session:

            async def metrics() -> dict[str, int]:
                async with session.get(url) as resp:
                    assert resp.status == 200
                    body = await resp.json()
                    counters: dict[str, int] = body["Gossip"]["Metrics"]
                    return counters

            for _ in range(100):
                counters = await metrics()
                if counters["rejected_wrong_node"]:
                    break
                await asyncio.sleep(0.05)
            async with session.get(url) as resp:
                refused = (await resp.json())["Gossip"]["RefusedMessages"]
        assert refused == {"misattributed": 1}
        assert counters["rejected_bad_signature"] >= 1
        assert counters["rejected_stale"] >= 1
        assert counters["rejected_wrong_node"] >= 1
        # None of it was applied: the requester still holds the genuine record.
        assert requester.membership is not None
        held = requester.membership.member(compute.node_id)
        assert held is not None and held.record.roles == frozenset({NodeType.COMPUTE})
        assert held.record.version >= genuine.version
