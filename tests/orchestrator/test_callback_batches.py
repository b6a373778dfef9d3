"""Callbacks in batches, requester side: a real Orchestrator behind a real mTLS gRPC server
receives a compute node's DeliverCallbacks; a nested store transaction is a savepoint; and a
compute node's outbox delivers over gRPC once its requester is back."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest

from bacalhau import errors
from bacalhau._proto.v1 import orchestrator_pb2, orchestrator_pb2_grpc, types_pb2
from bacalhau.compute import CallbackOutbox, ExecutionStore
from bacalhau.identity import NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    ExecutionStateType,
    Job,
    JobStateType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.node._wiring import RequesterLinks
from bacalhau.orchestrator import JobStore
from bacalhau.orchestrator._metrics import CALLBACK_BATCH_ITEMS
from bacalhau.transport import (
    NodeServer,
    OrchestratorClient,
    channel_credentials,
    channel_options,
)
from bacalhau.transport._convert_messages import callback_item_to_proto
from bacalhau.transport._signing import signing_input
from tests.compute.jobs import make_execution
from tests.orchestrator.test_false_proposals import (
    reputation,
    requester,
    verified_job,
)
from tests.transport.cluster import Cluster, RecordingOrchestrator

E = ExecutionStateType


def _job() -> Job:
    return Job.from_dict({"Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]})


def _batch_items_observed() -> float:
    for metric in CALLBACK_BATCH_ITEMS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                return sample.value
    return 0.0


async def test_a_batch_is_applied_in_order_and_a_refused_item_drops_nothing_else(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    req_node, node = cluster.node(), cluster.node()
    async with requester(tmp_path, [node.node_id], identity=req_node.node_id) as req:
        server = NodeServer(req_node.identity, req_node.files)
        server.add_orchestrator_handler(req.orch)
        async with (
            server,
            OrchestratorClient(
                node.identity, node.files, server.address, req_node.node_id
            ) as client,
        ):
            job_id = (await req.orch.submit_job(_job())).job_id
            _, ask = await req.compute.next("ask")
            assert isinstance(ask, AskForBidRequest)
            ex = ask.execution
            done = RunResult(
                ex.id, job_id, node.node_id, SpecConfig(type="noop"), RunCommandResult("hi")
            )
            before = _batch_items_observed()
            outcomes = await client.deliver_callbacks(
                [
                    BidResult(ex.id, job_id, node.node_id, accepted=True),
                    # Unknown here: refused, and the next one is applied all the same.
                    BidResult("e-unknown", job_id, node.node_id, accepted=True),
                    # About another node: refused as a single callback would be.
                    BidResult(ex.id, job_id, req_node.node_id, accepted=True),
                    done,
                ]
            )
            assert outcomes[0] is None and outcomes[3] is None
            assert isinstance(outcomes[1], errors.NotFound)
            assert isinstance(outcomes[2], errors.PermissionDenied)
            assert _batch_items_observed() - before == 3  # the checked items, in one batch

            job = await req.finished(job_id)
            assert job.state == JobStateType.COMPLETED
            messages = [h.event.message for h in await req.orch.job_history(job_id)]
            # The bid before the result, and the job Running between them, as in two calls.
            order = ["Bid accepted by node", "Running", "Completed successfully", "Job completed"]
            assert [m for m in messages if m in order] == order


def _forged_batch(items: list[RunResult], signer: str) -> types_pb2.SignedPayload:
    """A batch naming ``signer`` as its sender and signer, signed with another key."""
    batch = orchestrator_pb2.CallbackBatch(
        node_id=signer, items=[callback_item_to_proto(i) for i in items]
    )
    payload = batch.SerializeToString()
    stranger = NodeIdentity.generate()
    signature = stranger.sign(signing_input(batch.DESCRIPTOR.full_name, payload))
    return types_pb2.SignedPayload(payload=payload, signature=signature, signer=signer)


async def test_a_batch_whose_signature_does_not_hold_counts_against_its_sender(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    req_node, liar, honest = (cluster.node() for _ in range(3))
    async with requester(
        tmp_path, [liar.node_id, honest.node_id], identity=req_node.node_id
    ) as req:
        server = NodeServer(req_node.identity, req_node.files)
        server.add_orchestrator_handler(req.orch)
        async with server:
            job_id = (await req.orch.submit_job(verified_job(2))).job_id
            replicas = await req.asks(2)
            mine = replicas[liar.node_id]
            published = await req.publish(mine, "42\n")
            result = RunResult(mine.id, job_id, liar.node_id, published, RunCommandResult())
            channel = grpc.aio.secure_channel(
                server.address,
                channel_credentials(liar.files),
                options=channel_options(req_node.node_id),
            )
            try:
                stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.DeliverCallbacks(
                        orchestrator_pb2.DeliverCallbacksRequest(
                            batch=_forged_batch([result], liar.node_id)
                        ),
                        timeout=5,
                    )
            finally:
                await channel.close()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # As a refused single run result: the sender's replica failed verification and
            # the sender (the TLS peer) has a disagreement on record.
            failed = req.orch.store.get_execution(mine.id)
            assert failed.compute_state == E.FAILED
            assert failed.compute_details["ErrorCode"] == "VerificationFailed"
            assert reputation(req.orch) == {liar.node_id: (0, 1)}


def test_a_nested_block_that_raises_is_rolled_back_alone(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job = _job()
    job.id, job.namespace, job.state, job.revision = "j-1", "default", JobStateType.PENDING, 1
    with store.transaction():
        store.create_job(job)
        with pytest.raises(RuntimeError), store.transaction():
            store.update_job_state("j-1", JobStateType.RUNNING)
            raise RuntimeError("this item fails")
        with store.transaction():
            store.update_job_state("j-1", JobStateType.FAILED, message="the next one stands")
    kept = store.get_job("j-1")
    assert (kept.state, kept.state_message, kept.revision) == (
        JobStateType.FAILED,
        "the next one stands",
        2,
    )
    # Nor does the undone item's history survive, in SQL or in memory.
    assert [h.job_state_new for h in store.history_of("j-1")] == [JobStateType.FAILED]
    store.close()
    assert [h.job_state_new for h in JobStore(tmp_path / "jobs.db").history_of("j-1")] == [
        JobStateType.FAILED
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_outbox_delivers_over_grpc_once_the_requester_is_back(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    req_node, node = cluster.node(), cluster.node()
    port = _free_port()
    handler = RecordingOrchestrator()
    links = RequesterLinks()
    execution = make_execution("echo hi", node_id=node.node_id)
    bid = BidResult(execution.id, execution.job_id, node.node_id, accepted=True)
    done = RunResult(
        execution.id, execution.job_id, node.node_id, SpecConfig(type="noop"), RunCommandResult()
    )
    with ExecutionStore(tmp_path / "compute.db") as store:
        async with OrchestratorClient(
            node.identity, node.files, f"127.0.0.1:{port}", req_node.node_id
        ) as client:
            links.add_remote(req_node.node_id, client)
            box = CallbackOutbox(
                store=store, callbacks=links, initial_backoff=0.02, max_backoff=0.1, linger=0
            )
            async with box:
                # The requester is down: both stay queued and are retried.
                store.create(execution, requester_id=req_node.node_id, callback=bid)
                store.enqueue_callback(req_node.node_id, done)
                box.kick(req_node.node_id)
                assert not await box.flush(0.3)
                assert len(store.pending_callbacks(req_node.node_id)) == 2
                # Back at the same address: delivered, in order, in one call.
                server = NodeServer(req_node.identity, req_node.files, "127.0.0.1", port)
                server.add_orchestrator_handler(handler)
                async with server:
                    assert await box.flush(10)
                assert store.pending_callbacks(req_node.node_id) == []
    assert handler.calls == [("on_callbacks", [bid, done])]
