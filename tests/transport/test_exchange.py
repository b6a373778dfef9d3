"""A full bprotocol exchange between a requester and a compute node, over real mTLS gRPC."""

from __future__ import annotations

import dataclasses

import pytest

from bacalhau import errors
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ExecutionReport,
    NodeType,
    QueuedExecution,
    RunResult,
    SpecConfig,
)
from bacalhau.transport import ComputeClient, NodeServer, OrchestratorClient
from tests.transport.cluster import Cluster, RecordingCompute, RecordingOrchestrator
from tests.transport.samples import full_event, full_execution


async def test_full_bprotocol_exchange(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    orch_handler, compute_handler = RecordingOrchestrator(), RecordingCompute()

    req_server = NodeServer(requester.identity, requester.files, "127.0.0.1", 0)
    req_server.add_orchestrator_handler(orch_handler)
    comp_server = NodeServer(compute.identity, compute.files, "127.0.0.1", 0)
    comp_server.add_compute_handler(compute_handler)

    async with (
        req_server,
        comp_server,
        ComputeClient(requester.identity, requester.files) as to_compute,
        # The compute node knows only the requester's address, not its ID.
        OrchestratorClient(compute.identity, compute.files, req_server.address) as to_requester,
    ):
        assert req_server.port > 0 and comp_server.port > 0

        # 1. The compute node asks who is at the address; it learns (and pins) the
        # requester's node ID, and reports what it holds.
        claim = await to_requester.identify()
        assert claim.node_id == requester.node_id and claim.is_requester
        assert to_requester.orchestrator_node_id == requester.node_id
        # What waits in its run queue, and for how long (to the millisecond).
        report = ExecutionReport(compute.node_id, ["e-0"], [QueuedExecution("e-0", 2.5)])
        await to_requester.report_executions(report)

        # 2. The requester asks for a bid.
        to_compute.register_node(compute.node_id, comp_server.address)
        execution = full_execution(compute.node_id)
        ask = AskForBidRequest(execution=execution, wait_for_approval=True)
        await to_compute.ask_for_bid(compute.node_id, ask)

        # 3. The compute node bids, is accepted, runs, and reports.
        bid = BidResult(
            execution_id=execution.id,
            job_id=execution.job_id,
            node_id=compute.node_id,
            accepted=True,
            event=full_event(),
        )
        await to_requester.on_bid_complete(bid)
        accept = BidDecision(execution_id=execution.id, accepted=True, justification="ok")
        await to_compute.bid_accepted(compute.node_id, accept)
        run = RunResult(
            execution_id=execution.id,
            job_id=execution.job_id,
            node_id=compute.node_id,
            published_result=SpecConfig(type="local", params={"URL": "http://x/e.tgz"}),
            run_output=execution.run_output,  # type: ignore[arg-type]
        )
        await to_requester.on_run_complete(run)

        # 4. The other messages of the protocol.
        reject = BidDecision(execution_id="e-2", accepted=False, justification="enough")
        await to_compute.bid_rejected(compute.node_id, reject)
        cancel = CancelExecutionRequest(execution_id="e-3", justification="user stop")
        await to_compute.cancel_execution(compute.node_id, cancel)
        failure = ComputeFailure(
            execution_id="e-3", job_id="j-3", node_id=compute.node_id, event=full_event()
        )
        await to_requester.on_compute_failure(failure)
        # Taken back from the run queue only while it waits there: the answer says.
        compute_handler.withdraw_answers["e-5"] = "Running"
        withdraw = CancelExecutionRequest(execution_id="e-4", justification="moved to n2")
        assert await to_compute.withdraw_queued(compute.node_id, withdraw) is None
        started = CancelExecutionRequest(execution_id="e-5")
        assert await to_compute.withdraw_queued(compute.node_id, started) == "Running"

    # Every message arrived intact and attributed to the node that sent it.
    assert compute_handler.calls == [
        ("ask_for_bid", requester.node_id, ask),
        ("bid_accepted", requester.node_id, accept),
        ("bid_rejected", requester.node_id, reject),
        ("cancel_execution", requester.node_id, cancel),
        ("withdraw_queued", requester.node_id, withdraw),
        ("withdraw_queued", requester.node_id, started),
    ]
    assert orch_handler.calls == [
        ("report_executions", report),
        ("on_bid_complete", bid),
        ("on_run_complete", run),
        ("on_compute_failure", failure),
    ]


async def test_hybrid_node_serves_both_roles_on_one_server(cluster: Cluster) -> None:
    node = cluster.node()
    orch_handler, compute_handler = RecordingOrchestrator(), RecordingCompute()
    server = NodeServer(node.identity, node.files)
    server.add_compute_handler(compute_handler)
    server.add_orchestrator_handler(orch_handler)
    async with (
        server,
        ComputeClient(node.identity, node.files) as to_compute,
        OrchestratorClient(node.identity, node.files, server.address, node.node_id) as to_orch,
    ):
        to_compute.register_node(node.node_id, server.address)
        await to_compute.cancel_execution(node.node_id, CancelExecutionRequest("e-1"))
        claim = await to_orch.identify()
        await to_orch.report_executions(ExecutionReport(node.node_id))
    assert claim.roles == frozenset({NodeType.COMPUTE, NodeType.REQUESTER})
    assert compute_handler.calls == [
        ("cancel_execution", node.node_id, CancelExecutionRequest("e-1"))
    ]
    assert orch_handler.calls == [("report_executions", ExecutionReport(node.node_id))]


async def test_a_compute_node_identifies_as_compute_and_is_pinned(cluster: Cluster) -> None:
    other, compute = cluster.node(), cluster.node()
    server = NodeServer(other.identity, other.files)
    server.add_compute_handler(RecordingCompute())
    async with server, OrchestratorClient(compute.identity, compute.files, server.address) as c:
        claim = await c.identify()
        assert claim.node_id == other.node_id and not claim.is_requester
        assert claim.roles == frozenset({NodeType.COMPUTE})
        assert c.orchestrator_node_id == other.node_id


async def test_handler_errors_come_back_as_the_same_error(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    compute_handler = RecordingCompute()
    server = NodeServer(compute.identity, compute.files)
    server.add_compute_handler(compute_handler)
    async with server, ComputeClient(requester.identity, requester.files) as client:
        client.register_node(compute.node_id, server.address)

        compute_handler.fail_with = errors.InvalidJobSpec(
            "bad image", field="Tasks[0].Engine.Params.Image", hint="use a local image"
        )
        with pytest.raises(errors.InvalidJobSpec) as spec_err:
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))
        assert spec_err.value.field == "Tasks[0].Engine.Params.Image"
        assert spec_err.value.hint == "use a local image"
        assert spec_err.value.message == "bad image"

        compute_handler.fail_with = errors.ExecutionNotFound(
            "no execution e-9", hint="é: any UTF-8 hint", component="ExecutionStore"
        )
        with pytest.raises(errors.NotFound) as nf:
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-9"))
        assert nf.value.code == "NotFound"
        assert nf.value.hint == "é: any UTF-8 hint"
        assert nf.value.component == "ExecutionStore"

        compute_handler.fail_with = errors.BidRejected("no capacity")
        with pytest.raises(errors.BidRejected):
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))

        # Something that is not ours: the caller gets an InternalError, not a hang or a crash.
        compute_handler.fail_with = ZeroDivisionError("oops")
        with pytest.raises(errors.InternalError, match="ZeroDivisionError"):
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))
    assert compute_handler.calls == []


async def test_ask_for_bid_for_another_node_is_refused(cluster: Cluster) -> None:
    requester, compute, other = cluster.node(), cluster.node(), cluster.node()
    handler = RecordingCompute()
    server = NodeServer(compute.identity, compute.files)
    server.add_compute_handler(handler)
    async with server, ComputeClient(requester.identity, requester.files) as client:
        client.register_node(compute.node_id, server.address)
        ask = AskForBidRequest(execution=full_execution(other.node_id))
        with pytest.raises(errors.InvalidRequest, match="assigned to node"):
            await client.ask_for_bid(compute.node_id, ask)
    assert handler.calls == []


async def test_unknown_node_and_unreachable_node(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    async with ComputeClient(requester.identity, requester.files, timeout=2.0) as client:
        with pytest.raises(errors.NodeNotFound):
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))
        with pytest.raises(errors.InvalidRequest):
            client.register_node("not-a-node-id", "127.0.0.1:1")

        # A node that is registered but not running: Unavailable after one retry, quickly.
        server = NodeServer(compute.identity, compute.files)
        server.add_compute_handler(RecordingCompute())
        async with server:
            address = server.address
        client.register_node(compute.node_id, address)
        with pytest.raises(errors.Unavailable) as err:
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))
        assert err.value.retryable
        assert compute.node_id in err.value.message


async def test_node_moves_to_a_new_address(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    first, second = RecordingCompute(), RecordingCompute()
    async with ComputeClient(requester.identity, requester.files) as client:
        server = NodeServer(compute.identity, compute.files)
        server.add_compute_handler(first)
        async with server:
            client.register_node(compute.node_id, server.address)
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-1"))
        server2 = NodeServer(compute.identity, compute.files)
        server2.add_compute_handler(second)
        async with server2:
            client.register_node(compute.node_id, server2.address)
            await client.cancel_execution(compute.node_id, CancelExecutionRequest("e-2"))
    assert [c[2] for c in first.calls] == [CancelExecutionRequest("e-1")]
    assert [c[2] for c in second.calls] == [CancelExecutionRequest("e-2")]


async def test_callbacks_wait_for_a_proven_requester(cluster: Cluster) -> None:
    compute = cluster.node()
    async with OrchestratorClient(compute.identity, compute.files, "127.0.0.1:1") as client:
        bid = BidResult(execution_id="e", job_id="j", node_id=compute.node_id, accepted=True)
        with pytest.raises(errors.Unavailable, match="has not proven"):
            await client.on_bid_complete(bid)


async def test_decision_mismatch_is_refused_by_the_client(cluster: Cluster) -> None:
    accepted = BidDecision(execution_id="e", accepted=True)
    node = cluster.node()
    async with ComputeClient(node.identity, node.files) as client:
        with pytest.raises(errors.InvalidRequest):
            await client.bid_rejected(node.node_id, accepted)
        with pytest.raises(errors.InvalidRequest):
            await client.bid_accepted(node.node_id, dataclasses.replace(accepted, accepted=False))


async def test_server_needs_a_handler_and_a_free_port(cluster: Cluster) -> None:
    node = cluster.node()
    with pytest.raises(errors.InvalidRequest):
        await NodeServer(node.identity, node.files).start()
    first = NodeServer(node.identity, node.files)
    first.add_compute_handler(RecordingCompute())
    async with first:
        with pytest.raises(errors.InvalidRequest):
            first.add_orchestrator_handler(RecordingOrchestrator())
        clash = NodeServer(node.identity, node.files, "127.0.0.1", first.port)
        clash.add_compute_handler(RecordingCompute())
        with pytest.raises(errors.Unavailable, match="cannot listen"):
            await clash.start()
