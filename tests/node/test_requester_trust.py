"""The composition root gives each compute role its trusted requesters: a hybrid node itself,
a compute node the requesters that proved their identity at its seed addresses plus those
configured (reached at the address its gossip record gives, pinned to its ID); a member whose
gossip record claims the requester role is not obeyed for that; and a configured requester
ID that is not a node ID stops the node from starting."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, PermissionDenied
from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import CancelExecutionRequest, Job, JobStateType, NodeType
from bacalhau.node import start_node
from bacalhau.transport import ComputeClient
from tests.node.test_hybrid import _config, sees, until


async def _cancel_as(files: NodeFiles, node_id: str, address: str) -> None:
    async with ComputeClient(NodeIdentity.load(files.data_dir), files, timeout=5) as client:
        client.register_node(node_id, address)
        await client.cancel_execution(node_id, CancelExecutionRequest("e-unknown", "test"))


async def test_each_compute_role_trusts_exactly_its_requesters(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    files = {
        name: ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )
        for name in ("hybrid", "compute", "listed", "member")
    }
    listed_id = NodeIdentity.load(tmp_path / "listed").node_id
    async with AsyncExitStack() as stack:
        hybrid = await start_node(
            _config(tmp_path / "hybrid", orchestrator=True, compute=True), stack
        )
        remote = await start_node(
            _config(
                tmp_path / "compute",
                compute=True,
                orchestrator_address=hybrid.grpc_address,
                trusted_requesters=listed_id,
            ),
            stack,
        )
        assert remote.compute is not None
        compute = remote.compute
        await until(lambda: compute.trust.is_trusted(hybrid.node_id), "trusting the requester")
        assert hybrid.compute is not None
        assert hybrid.compute.trust.trusted == {hybrid.node_id}
        assert remote.compute.trust.trusted == {hybrid.node_id, listed_id}

        # Over the network: the listed requester gets through (the execution is unknown,
        # so the cancel is a no-op); another cluster member is refused by both nodes.
        await _cancel_as(files["listed"], remote.node_id, remote.grpc_address)
        for node in (hybrid, remote):
            with pytest.raises(PermissionDenied):
                await _cancel_as(files["member"], node.node_id, node.grpc_address)
        member_id = NodeIdentity.load(tmp_path / "member").node_id
        assert remote.compute.trust.refused == {member_id: 1}


async def test_a_trusted_requester_must_be_a_node_id(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "compute",
        compute=True,
        orchestrator_address="127.0.0.1:1",
        trusted_requesters="not-a-node-id",
    )
    async with AsyncExitStack() as stack:
        with pytest.raises(InvalidConfiguration) as err:
            await start_node(config, stack)
    assert err.value.details["Field"] == "trusted_requesters"


async def test_a_member_claiming_the_requester_role_is_not_obeyed(tmp_path: Path) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    for name in ("requester", "compute", "rogue"):
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )
    async with AsyncExitStack() as stack:
        requester = await start_node(_config(tmp_path / "requester", orchestrator=True), stack)
        compute = await start_node(
            _config(tmp_path / "compute", compute=True, seeds=requester.grpc_address), stack
        )
        # A real requester of the cluster, gossiping through the same seed: its record says
        # "Requester", and every member learns it.
        rogue = await start_node(
            _config(tmp_path / "rogue", orchestrator=True, seeds=requester.grpc_address), stack
        )
        assert compute.compute is not None and compute.membership is not None
        endpoint, runner = compute.compute, compute.membership

        def rogue_seen() -> bool:
            member = runner.member(rogue.node_id)
            return member is not None and NodeType.REQUESTER in member.record.roles

        await until(rogue_seen, "the compute node hearing of the rogue requester")
        await until(lambda: endpoint.trust.is_trusted(requester.node_id), "trust")
        assert not endpoint.trust.is_trusted(rogue.node_id)
        with pytest.raises(PermissionDenied):
            await _cancel_as(
                NodeFiles.in_dir(tmp_path / "rogue"), compute.node_id, compute.grpc_address
            )
        assert endpoint.trust.refused == {rogue.node_id: 1}


async def test_a_requester_trusted_by_configuration_is_reached_through_its_record(
    tmp_path: Path,
) -> None:
    ca = ClusterCA.create(tmp_path / "ca")
    for name in ("seed", "compute", "listed"):
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )
    listed_id = NodeIdentity.load(tmp_path / "listed").node_id
    async with AsyncExitStack() as stack:
        seed = await start_node(_config(tmp_path / "seed", orchestrator=True), stack)
        compute = await start_node(
            _config(
                tmp_path / "compute",
                compute=True,
                seeds=seed.grpc_address,
                trusted_requesters=listed_id,
            ),
            stack,
        )
        # A second requester, not at the compute node's seed: it joins the gossip through the
        # same seed, sees the compute node there, and runs a job on it.
        listed = await start_node(
            _config(tmp_path / "listed", orchestrator=True, seeds=seed.grpc_address), stack
        )
        await until(lambda: sees(listed, compute.node_id), "the listed requester seeing it")
        assert listed.orchestrator is not None
        orch = listed.orchestrator
        submitted = await orch.submit_job(
            Job.from_dict(
                {
                    "Type": "batch",
                    "Tasks": [
                        {"Name": "main", "Engine": {"Type": "noop", "Params": {"Stdout": "x"}}}
                    ],
                }
            )
        )
        for _ in range(100):
            job = await orch.get_job(submitted.job_id)
            if job.state.is_terminal():
                break
            await orch.wait_for_change(job.id, after_seq=orch.store.last_seq(job.id), timeout=1)
        assert job.state == JobStateType.COMPLETED, job.state_message
        assert compute.compute is not None
        assert compute.compute.trust.trusted == {seed.node_id, listed_id}
