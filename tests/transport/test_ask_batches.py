"""Pre-approved asks made for one node in one turn of the requester's loop go in one
AskForBids call over real mutual-TLS gRPC: each caller gets its own answer or its own error,
asks for different engines or nodes are not mixed, a lone ask is a plain AskForBid, and a
node that does not serve AskForBids (an older node) is asked one call at a time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from bacalhau import errors
from bacalhau._proto.v1 import compute_pb2, compute_pb2_grpc
from bacalhau.models import AskAnswer, AskForBidRequest, BidResult
from bacalhau.transport import ComputeClient, NodeServer
from bacalhau.transport._answers import open_answers
from bacalhau.transport._ask_batches import MAX_BATCH_ASKS
from bacalhau.transport._channel import NodeChannel
from bacalhau.transport._convert_messages import ask_for_bid_to_proto
from bacalhau.transport._services import MAX_BATCH_ASKS as SERVED_LIMIT
from bacalhau.transport._services import ComputeServicer
from bacalhau.transport._signing import seal
from bacalhau.transport._tls import TlsMaterial, server_credentials, server_options
from tests.transport.cluster import Cluster, Node, RecordingCompute
from tests.transport.samples import full_execution


@dataclass
class BiddingCompute(RecordingCompute):
    """Answers each ask with its own bid; refuses the executions named in ``refuse``."""

    refuse: frozenset[str] = frozenset()
    node_id: str = ""
    delay: float = 0.0

    async def ask_for_bid(  # type: ignore[override]
        self, source_node_id: str, request: AskForBidRequest
    ) -> AskAnswer | None:
        self._record("ask_for_bid", source_node_id, request)
        await asyncio.sleep(self.delay)
        ex = request.execution
        if ex.id in self.refuse:
            raise errors.InvalidRequest(f"no room for {ex.id}", hint="try later")
        bid = BidResult(ex.id, ex.job_id, self.node_id, accepted=True)
        return AskAnswer(callbacks=[bid], seqs=[int(ex.id.rsplit("-", 1)[1])])


def _ask(node_id: str, n: int, engine: str = "wasm") -> AskForBidRequest:
    base = full_execution(node_id)
    job = base.job.copy() if base.job is not None else None
    assert job is not None
    job.tasks[0].engine.type = engine
    execution = dataclasses.replace(base, id=f"e-batch-{n}", job=job)
    return AskForBidRequest(execution, wait_for_approval=False, answer_linger=0.02)


def _bid_of(answer: AskAnswer | None) -> tuple[str, list[int]]:
    assert answer is not None and len(answer.callbacks) == 1
    bid = answer.callbacks[0]
    assert isinstance(bid, BidResult)
    return bid.execution_id, answer.seqs


@contextlib.asynccontextmanager
async def _asking(
    requester: Node, compute: Node, handler: BiddingCompute
) -> AsyncIterator[tuple[ComputeClient, NodeServer]]:
    """``requester``'s client, knowing ``compute``, whose server answers with ``handler``."""
    handler.node_id = compute.node_id
    server = NodeServer(compute.identity, compute.files, "127.0.0.1", 0)
    server.add_compute_handler(handler)
    async with server, ComputeClient(requester.identity, requester.files) as client:
        client.register_node(compute.node_id, server.address)
        yield client, server


async def test_asks_of_one_turn_go_in_one_call_and_each_gets_its_answer(
    cluster: Cluster,
) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute()
    async with _asking(requester, compute, handler) as (client, _):
        answers = await asyncio.gather(
            *(client.ask_for_bid(compute.node_id, _ask(compute.node_id, n)) for n in range(5))
        )
        assert [_bid_of(a) for a in answers] == [(f"e-batch-{n}", [n]) for n in range(5)]
        assert (client.ask_batches.batch_calls, client.ask_batches.batched_asks) == (1, 5)
        assert len(handler.calls) == 5
        # What each ask carried reached the node as it would alone.
        received = handler.calls[0][2]
        assert isinstance(received, AskForBidRequest)
        assert received.answer_linger == pytest.approx(0.02)

        # A lone ask is a plain AskForBid.
        lone = await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 9))
        assert _bid_of(lone) == ("e-batch-9", [9])
        assert client.ask_batches.batch_calls == 1

        # Asks for another engine make their own batch (a batch waits for its slowest).
        await asyncio.gather(
            *(
                client.ask_for_bid(compute.node_id, _ask(compute.node_id, n, engine))
                for n, engine in ((10, "wasm"), (11, "docker"), (12, "wasm"), (13, "docker"))
            )
        )
        assert (client.ask_batches.batch_calls, client.ask_batches.batched_asks) == (3, 9)


async def test_one_asks_error_is_its_own(cluster: Cluster) -> None:
    requester, compute, elsewhere = cluster.node(), cluster.node(), cluster.node()
    handler = BiddingCompute(refuse=frozenset({"e-batch-1"}))
    async with _asking(requester, compute, handler) as (client, _):
        # The third ask names an execution assigned to another node: refused alone.
        misplaced = _ask(elsewhere.node_id, 2)
        outcomes = await asyncio.gather(
            client.ask_for_bid(compute.node_id, _ask(compute.node_id, 0)),
            client.ask_for_bid(compute.node_id, _ask(compute.node_id, 1)),
            client.ask_for_bid(compute.node_id, misplaced),
            client.ask_for_bid(compute.node_id, _ask(compute.node_id, 3)),
            return_exceptions=True,
        )
        assert client.ask_batches.batch_calls == 1
        first, refused, wrong_node, last = outcomes
        assert _bid_of(first) == ("e-batch-0", [0])  # type: ignore[arg-type]
        assert _bid_of(last) == ("e-batch-3", [3])  # type: ignore[arg-type]
        assert isinstance(refused, errors.InvalidRequest)
        assert (refused.message, refused.hint) == ("no room for e-batch-1", "try later")
        assert isinstance(wrong_node, errors.InvalidRequest)
        assert "assigned to node" in wrong_node.message
        assert len(handler.calls) == 3


async def test_an_ask_that_cannot_be_encoded_fails_alone(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute()
    async with _asking(requester, compute, handler) as (client, _):
        bad = _ask(compute.node_id, 1)
        assert bad.execution.job is not None
        bad.execution.job.tasks[0].env["A"] = "\ud800"  # not UTF-8: not for the wire
        outcomes = await asyncio.gather(
            client.ask_for_bid(compute.node_id, _ask(compute.node_id, 0)),
            client.ask_for_bid(compute.node_id, bad),
            client.ask_for_bid(compute.node_id, _ask(compute.node_id, 2)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], (ValueError, OverflowError, TypeError))
        assert [_bid_of(outcomes[i]) for i in (0, 2)] == [  # type: ignore[arg-type]
            ("e-batch-0", [0]),
            ("e-batch-2", [2]),
        ]


async def test_a_caller_that_leaves_takes_only_its_own_answer(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute(delay=0.2)
    async with _asking(requester, compute, handler) as (client, _):
        # The first caller of the turn leads the batch; it leaves while it is under way.
        asks = [
            asyncio.create_task(client.ask_for_bid(compute.node_id, _ask(compute.node_id, n)))
            for n in range(3)
        ]
        await asyncio.sleep(0.05)
        asks[0].cancel()
        done = await asyncio.gather(*asks, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)
        assert [_bid_of(a)[0] for a in done[1:]] == ["e-batch-1", "e-batch-2"]  # type: ignore[arg-type]
        assert client.ask_batches.batch_calls == 1


class _OlderComputeServicer(ComputeServicer):
    """ComputeService as a node built before AskForBids serves it: the generated stub's
    UNIMPLEMENTED answer."""

    AskForBids = compute_pb2_grpc.ComputeServiceServicer.AskForBids  # type: ignore[assignment]


async def test_a_node_without_batches_is_asked_one_call_at_a_time(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute(node_id=compute.node_id)
    server = grpc.aio.server(options=server_options())
    compute_pb2_grpc.add_ComputeServiceServicer_to_server(
        _OlderComputeServicer(handler, identity=compute.identity), server
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(compute.files))
    await server.start()
    try:
        async with ComputeClient(requester.identity, requester.files) as client:
            client.register_node(compute.node_id, f"127.0.0.1:{port}")
            for _ in range(2):  # the second round goes straight to single calls
                answers = await asyncio.gather(
                    *(
                        client.ask_for_bid(compute.node_id, _ask(compute.node_id, n))
                        for n in range(3)
                    )
                )
                assert [_bid_of(a)[0] for a in answers] == [f"e-batch-{n}" for n in range(3)]
            assert client.ask_batches.batch_calls == 0
            assert len(handler.calls) == 6
    finally:
        await server.stop(None)


def test_answers_that_do_not_add_up_are_refused(cluster: Cluster) -> None:
    compute = cluster.node()
    response = compute_pb2.AskForBidsResponse(answer_sizes=[0, 1])
    response.outcomes.add()
    response.outcomes.add()
    with pytest.raises(errors.InvalidRequest):
        open_answers(compute.node_id, response, 2)  # a callback counted, none carried
    with pytest.raises(errors.InvalidRequest):
        open_answers(compute.node_id, response, 3)  # three asks, two answers


async def test_a_large_turn_is_split_and_a_node_refuses_an_oversized_batch(
    cluster: Cluster,
) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute()
    async with _asking(requester, compute, handler) as (client, server):
        count = 2 * MAX_BATCH_ASKS + 10
        answers = await asyncio.gather(
            *(client.ask_for_bid(compute.node_id, _ask(compute.node_id, n)) for n in range(count))
        )
        assert [_bid_of(a)[0] for a in answers] == [f"e-batch-{n}" for n in range(count)]
        assert (client.ask_batches.batch_calls, client.ask_batches.batched_asks) == (3, count)

        # A requester that sends more than a node takes in one call is refused whole.
        asks = [
            ask_for_bid_to_proto(
                _ask(compute.node_id, n),
                requester_node_id=requester.node_id,
                compute_node_id=compute.node_id,
            )
            for n in range(SERVED_LIMIT + 1)
        ]
        batch = compute_pb2.BidAsks(
            requester_node_id=requester.node_id, compute_node_id=compute.node_id, asks=asks
        )
        channel = NodeChannel(server.address, TlsMaterial(requester.files), compute.node_id)
        try:
            stub = compute_pb2_grpc.ComputeServiceStub(channel.channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.AskForBids(
                    compute_pb2.AskForBidsRequest(bid_asks=seal(requester.identity, batch))
                )
        finally:
            await channel.close()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {SERVED_LIMIT}" in (refused.value.details() or "")
        assert len(handler.calls) == count


async def test_large_asks_are_split_under_the_message_limit(cluster: Cluster) -> None:
    """Twelve jobs of 1.5 MB each (the API takes up to 4 MB) make 18 MB of asks in one
    turn, past gRPC's 16 MB message limit: they go in several calls, and all are answered."""
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute()
    async with _asking(requester, compute, handler) as (client, _):
        asks = []
        for n in range(12):
            ask = _ask(compute.node_id, n)
            assert ask.execution.job is not None
            ask.execution.job.tasks[0].env["BIG"] = f"{n:x}" * (1_500_000 // len(f"{n:x}"))
            asks.append(ask)
        answers = await asyncio.gather(*(client.ask_for_bid(compute.node_id, a) for a in asks))
        assert [_bid_of(a)[0] for a in answers] == [f"e-batch-{n}" for n in range(12)]
        assert client.ask_batches.batch_calls == 1  # one turn's batch, sent in parts
        assert len(handler.calls) == 12
