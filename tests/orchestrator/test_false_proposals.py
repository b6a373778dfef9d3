"""False proposals on a verified job, through a real Orchestrator: a replica whose published
results are not the ones its node claims, and a run result whose signature does not hold
(sent over real mutual-TLS gRPC), each count as that node's disagreement and fail its replica.

The compute side is played by the test: its messages go straight to the orchestrator (or
through the transport's server), and results are published by the real local publisher and
served by the real result server, which the requester's real checker downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bacalhau import errors
from bacalhau._proto.v1 import orchestrator_pb2, orchestrator_pb2_grpc, types_pb2
from bacalhau.identity import NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    Execution,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.node._result_check import PublishedResultChecker
from bacalhau.orchestrator import Orchestrator, ResultCheck, ResultChecker
from bacalhau.publisher import LocalResultServer
from bacalhau.transport import (
    NodeServer,
    OrchestratorClient,
    channel_credentials,
    channel_options,
)
from bacalhau.transport._convert_messages import run_result_to_proto
from bacalhau.transport._signing import seal, signing_input
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute
from tests.transport.cluster import Cluster, Node

E = ExecutionStateType


def verified_job(count: int = 3) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": count,
            "Verification": {"Mode": "majority"},
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}, "Publisher": {"Type": "local"}}],
        }
    )


def results(root: Path, text: str) -> Path:
    out = root / "results"
    (out / "out").mkdir(parents=True)
    (out / "stdout").write_text("done\n")
    (out / "out" / "answer.txt").write_text(text)
    return out


@dataclass
class Requester:
    orch: Orchestrator
    compute: RecordingCompute
    view: StaticNodeView
    published: LocalResultServer
    root: Path

    async def asks(self, count: int) -> dict[str, Execution]:
        """The replicas asked of nodes, by node; each node bids at once."""
        out: dict[str, Execution] = {}
        for _ in range(count):
            node, ask = await self.compute.next("ask")
            assert isinstance(ask, AskForBidRequest)
            ex = ask.execution
            await self.orch.on_bid_complete(BidResult(ex.id, ex.job_id, node, accepted=True))
            out[node] = ex
        return out

    async def publish(self, ex: Execution, text: str) -> SpecConfig:
        """Publish results holding ``text`` as ``ex``'s, with the real local publisher."""
        folder = results(self.root / ex.id, text)
        return await self.published.publisher().publish(ex.id, Job(), folder)

    async def complete(self, ex: Execution, node: str, published: SpecConfig) -> None:
        await self.orch.on_run_complete(
            RunResult(ex.id, ex.job_id, node, published, RunCommandResult(stdout="done"))
        )

    async def finished(self, job_id: str) -> Job:
        for _ in range(300):
            job = await self.orch.get_job(job_id)
            if job.state.is_terminal():
                return job
            seq = self.orch.store.last_seq(job_id)
            await self.orch.wait_for_change(job_id, after_seq=seq, timeout=0.1)
        raise AssertionError("the job did not finish")


@contextlib.asynccontextmanager
async def requester(
    root: Path,
    nodes: list[str],
    identity: str = "requester",
    compute: RecordingCompute | None = None,
) -> AsyncIterator[Requester]:
    compute = compute or RecordingCompute()
    view = StaticNodeView()
    async with LocalResultServer(directory=root / "published", port=0) as published:
        orch = Orchestrator(
            node_info=NodeInfo(node_id=identity, node_type=NodeType.REQUESTER),
            data_dir=root / "requester",
            compute=compute,
            node_view=view,
            result_checker=PublishedResultChecker(max_bytes=1 << 20),
        )
        async with orch:
            for node in nodes:
                await view.join(compute_node_info(node))
            yield Requester(orch, compute, view, published, root)


def reputation(orch: Orchestrator) -> dict[str, tuple[int, int]]:
    return orch.store.reputation_counts()


async def test_results_not_as_claimed_are_a_disagreement(tmp_path: Path) -> None:
    async with requester(tmp_path, ["node-a", "node-b", "node-c"]) as req:
        job_id = (await req.orch.submit_job(verified_job(3))).job_id
        replicas = await req.asks(3)
        honest = [await req.publish(replicas[n], "42\n") for n in ("node-a", "node-b")]
        claimed = honest[0].params["CID"]
        assert honest[1].params["CID"] == claimed
        # node-c publishes other results but claims the CID the others will agree on.
        lie = await req.publish(replicas["node-c"], "41\n")
        published_cid = lie.params["CID"]
        assert published_cid != claimed
        lie = SpecConfig(type=lie.type, params={**lie.params, "CID": claimed})
        await req.complete(replicas["node-a"], "node-a", honest[0])
        await req.complete(replicas["node-c"], "node-c", lie)
        await req.complete(replicas["node-b"], "node-b", honest[1])

        job = await req.finished(job_id)
        assert job.state == JobStateType.COMPLETED, job.state_message
        assert "2 of 3 replicas agree, 1 rejected" in job.state_message
        by_node = {e.node_id: e for e in await req.orch.list_executions(job_id)}
        liar = by_node.pop("node-c")
        assert liar.compute_state == E.FAILED
        assert liar.compute_details["ResultCheck"] == "mismatch"
        assert liar.compute_details["PublishedCID"] == published_cid
        assert liar.compute_details["Verification"] == "rejected"
        # The message names both the CID claimed and the one published.
        assert liar.compute_message.startswith("failed verification: its node claims results")
        assert claimed in liar.compute_message and published_cid in liar.compute_message
        for ex in by_node.values():
            assert ex.compute_state == E.COMPLETED
            assert ex.compute_details["ResultCheck"] == "matched"
            assert ex.compute_details["Verification"] == "accepted"
        assert reputation(req.orch) == {"node-a": (1, 0), "node-b": (1, 0), "node-c": (0, 1)}
        # The accepted results are what the job returns.
        [result] = await req.orch.job_results(job_id)
        assert result.params["URL"] != lie.params["URL"]


async def test_results_that_cannot_be_checked_keep_their_claim(tmp_path: Path) -> None:
    async with requester(tmp_path, ["node-a", "node-b"]) as req:
        job_id = (await req.orch.submit_job(verified_job(2))).job_id
        replicas = await req.asks(2)
        published = await req.publish(replicas["node-a"], "42\n")
        await req.complete(replicas["node-a"], "node-a", published)
        # node-b's archive is gone from the server: it cannot be downloaded, which proves
        # nothing against node-b (a network can fail): its claim stands, unchecked.
        gone = await req.publish(replicas["node-b"], "42\n")
        (req.published.directory / f"{replicas['node-b'].id}.tar.gz").unlink()
        await req.complete(replicas["node-b"], "node-b", gone)
        job = await req.finished(job_id)
        assert job.state == JobStateType.COMPLETED, job.state_message
        by_node = {e.node_id: e for e in await req.orch.list_executions(job_id)}
        details = by_node["node-b"].compute_details
        assert details["ResultCheck"] == "unchecked"
        assert "could not be downloaded" in details["ResultCheckNote"]
        assert by_node["node-a"].compute_details["ResultCheck"] == "matched"


# -- run results whose signature does not hold, over real mTLS gRPC ---------------------------


def forged_by_stranger(result: RunResult, signer: str) -> types_pb2.SignedPayload:
    """``result`` claiming ``signer`` as its signer, signed with a key that is not its."""
    message = run_result_to_proto(result)
    payload = message.SerializeToString()
    stranger = NodeIdentity.generate()
    signature = stranger.sign(signing_input(message.DESCRIPTOR.full_name, payload))
    return types_pb2.SignedPayload(payload=payload, signature=signature, signer=signer)


async def send_run_result(
    sender: Node, requester_node: Node, address: str, envelope: types_pb2.SignedPayload
) -> grpc.aio.AioRpcError:
    """Deliver ``envelope`` as ``sender`` (its TLS certificate); returns the refusal."""
    channel = grpc.aio.secure_channel(
        address,
        channel_credentials(sender.files),
        options=channel_options(requester_node.node_id),
    )
    try:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.OnRunComplete(
                orchestrator_pb2.OnRunCompleteRequest(run_result=envelope), timeout=5
            )
        return refused.value
    finally:
        await channel.close()


@pytest.mark.parametrize("how", ["forged-signature", "signed-by-another-node"])
async def test_a_run_result_whose_signature_does_not_hold_fails_its_replica(
    tmp_path: Path, how: str
) -> None:
    cluster = Cluster(tmp_path)
    req_node, liar, honest, victim = (cluster.node() for _ in range(4))
    nodes = [liar.node_id, honest.node_id, victim.node_id]
    async with requester(tmp_path, nodes, identity=req_node.node_id) as req:
        server = NodeServer(req_node.identity, req_node.files)
        server.add_orchestrator_handler(req.orch)
        async with server:
            job_id = (await req.orch.submit_job(verified_job(3))).job_id
            replicas = await req.asks(3)
            mine = replicas[liar.node_id]
            published = await req.publish(mine, "42\n")
            result = RunResult(mine.id, job_id, liar.node_id, published, RunCommandResult())
            if how == "forged-signature":
                # Names the TLS peer as its signer, but another key signed it.
                envelope = forged_by_stranger(result, liar.node_id)
            else:
                # Genuinely signed, by a node other than the one delivering it.
                other = NodeIdentity.generate()
                envelope = seal(other, run_result_to_proto(result))
            refused = await send_run_result(liar, req_node, server.address, envelope)
            # The refusal still reaches the sender.
            assert refused.code() == grpc.StatusCode.PERMISSION_DENIED

            # ... and counts: the sender's replica failed verification, saying why, and
            # the sender (the TLS peer) has a disagreement on record.
            failed = req.orch.store.get_execution(mine.id)
            assert failed.compute_state == E.FAILED
            assert failed.compute_message.startswith(
                "failed verification: the node's run result was refused ("
            )
            assert failed.compute_details["ErrorCode"] == "VerificationFailed"
            assert reputation(req.orch) == {liar.node_id: (0, 1)}

            # A forged result about another node's replica counts against its sender only.
            theirs = replicas[victim.node_id]
            about_victim = RunResult(
                theirs.id, job_id, victim.node_id, published, RunCommandResult()
            )
            await send_run_result(
                liar, req_node, server.address, forged_by_stranger(about_victim, liar.node_id)
            )
            assert reputation(req.orch) == {liar.node_id: (0, 2)}
            # So does a genuine signature of its own over a result about another's replica.
            async with OrchestratorClient(
                liar.identity, liar.files, server.address, req_node.node_id
            ) as client:
                with pytest.raises(errors.PermissionDenied):
                    await client.on_run_complete(
                        RunResult(theirs.id, job_id, liar.node_id, published, RunCommandResult())
                    )
            assert reputation(req.orch) == {liar.node_id: (0, 3)}
            assert req.orch.store.get_execution(theirs.id).compute_state not in (
                E.FAILED,
                E.COMPLETED,
            )


class NeverDone:
    """A checker whose checks never end (a requester stopped in the middle of them)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def check(self, result: SpecConfig, claimed_cid: str, node_id: str) -> ResultCheck:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_checks_cut_short_by_a_restart_run_again(tmp_path: Path) -> None:
    async with LocalResultServer(directory=tmp_path / "published", port=0) as published:
        first = NeverDone()
        compute, view = RecordingCompute(), StaticNodeView()

        def requester_with(checker: ResultChecker) -> Orchestrator:
            return Orchestrator(
                node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
                data_dir=tmp_path / "requester",
                compute=compute,
                node_view=view,
                result_checker=checker,
            )

        orch = requester_with(first)
        async with orch:
            for node in ("node-a", "node-b"):
                await view.join(compute_node_info(node))
            req = Requester(orch, compute, view, published, tmp_path)
            job_id = (await orch.submit_job(verified_job(2))).job_id
            replicas = await req.asks(2)
            for node, ex in replicas.items():
                await req.complete(ex, node, await req.publish(ex, "42\n"))
            await asyncio.wait_for(first.started.wait(), 5)
            # Every replica finished, but the verdict waits for the checks.
            await asyncio.sleep(0.2)
            assert (await orch.get_job(job_id)).state == JobStateType.RUNNING
        again = requester_with(PublishedResultChecker(max_bytes=1 << 20))
        async with again:
            req = Requester(again, compute, view, published, tmp_path)
            job = await req.finished(job_id)
            assert job.state == JobStateType.COMPLETED, job.state_message
            checks = {e.compute_details["ResultCheck"] for e in await again.list_executions(job_id)}
            assert checks == {"matched"}
