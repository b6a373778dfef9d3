"""Callbacks in the answer to an ask are held to the checks of a delivered batch, over real
mutual-TLS gRPC: the answer must be signed by the node asked, and each callback must speak
for that node; a run result that does not is refused and named, so it counts against the
node, and is not acknowledged."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bacalhau import errors
from bacalhau._proto.v1 import compute_pb2, orchestrator_pb2
from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    BidResult,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.transport import ComputeClient, NodeServer
from bacalhau.transport._answers import open_answer
from bacalhau.transport._convert_messages import callback_item_to_proto
from bacalhau.transport._signing import seal
from tests.transport.cluster import Cluster, RecordingCompute
from tests.transport.samples import full_execution


@dataclass
class AnsweringCompute(RecordingCompute):
    """Answers every ask with ``answer``."""

    answer: AskAnswer | None = None

    async def ask_for_bid(  # type: ignore[override]
        self, source_node_id: str, request: AskForBidRequest
    ) -> AskAnswer | None:
        self._record("ask_for_bid", source_node_id, request)
        return self.answer


def _run_result(execution_id: str, node_id: str) -> RunResult:
    return RunResult(execution_id, "j-1", node_id, SpecConfig(type="noop"), RunCommandResult("hi"))


async def test_an_answer_brings_the_nodes_callbacks_and_names_a_false_one(
    cluster: Cluster,
) -> None:
    requester, compute, other = cluster.node(), cluster.node(), cluster.node()
    execution = full_execution(compute.node_id)
    bid = BidResult(execution.id, execution.job_id, compute.node_id, accepted=True)
    handler = AnsweringCompute(
        answer=AskAnswer(
            # The node slips in a run result it claims another node produced.
            callbacks=[bid, _run_result("e-other", other.node_id)],
            seqs=[7, 8],
        )
    )
    server = NodeServer(compute.identity, compute.files, "127.0.0.1", 0)
    server.add_compute_handler(handler)
    async with server, ComputeClient(requester.identity, requester.files) as client:
        client.register_node(compute.node_id, server.address)
        ask = AskForBidRequest(
            execution, wait_for_approval=False, answer_linger=0.02, applied_callbacks=(3, 4)
        )
        answer = await client.ask_for_bid(compute.node_id, ask)
        received = handler.calls[0][2]
        assert isinstance(received, AskForBidRequest)
        assert received.answer_linger == pytest.approx(0.02)
        assert received.applied_callbacks == (3, 4)

        assert answer is not None
        assert answer.callbacks == [bid] and answer.seqs == [7]
        assert len(answer.refused) == 1
        assert answer.refused[0][:2] == (8, "e-other")
        assert other.node_id in answer.refused[0][2]

        handler.answer = None
        assert await client.ask_for_bid(compute.node_id, ask) is None


def test_an_answer_not_signed_by_the_node_asked_is_refused(cluster: Cluster) -> None:
    compute, impostor = cluster.node(), cluster.node()
    bid = BidResult("e-1", "j-1", impostor.node_id, accepted=True)
    batch = orchestrator_pb2.CallbackBatch(
        node_id=impostor.node_id, items=[callback_item_to_proto(bid)]
    )
    response = compute_pb2.AskForBidResponse(
        callbacks=seal(impostor.identity, batch), callback_seqs=[1]
    )
    with pytest.raises(errors.PermissionDenied):
        open_answer(compute.node_id, response)
    # Items and sequence numbers must pair up.
    batch.node_id = compute.node_id
    uneven = compute_pb2.AskForBidResponse(
        callbacks=seal(compute.identity, batch), callback_seqs=[1, 2]
    )
    with pytest.raises(errors.InvalidRequest):
        open_answer(compute.node_id, uneven)
