"""Callbacks that come back in the answer to an ask, requester side: a run result the
transport refused on arrival counts against its node once, and is acknowledged in the next
ask to that node so the node never sends it again (where it would count a second time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bacalhau.models import AskAnswer, AskForBidRequest, ExecutionStateType
from tests.orchestrator.test_callbacks import RecordingCompute
from tests.orchestrator.test_false_proposals import reputation, requester, verified_job

E = ExecutionStateType
LIAR = "node-liar"


@dataclass
class AnsweringCompute(RecordingCompute):
    """Records every ask; the liar's first one is answered with a refused run result about
    its own replica (sequence number 8), as the transport reports one it refused."""

    answered: list[str] = field(default_factory=list)

    async def ask_for_bid(  # type: ignore[override]
        self, node_id: str, request: AskForBidRequest
    ) -> AskAnswer | None:
        self._record("ask", node_id, request)
        if node_id != LIAR or self.answered:
            return None
        self.answered.append(request.execution.id)
        reason = "run result signed by another node"
        return AskAnswer(callbacks=[], seqs=[], refused=[(8, request.execution.id, reason)])


async def test_a_refused_run_result_in_an_answer_counts_once_and_is_acknowledged(
    tmp_path: Path,
) -> None:
    compute = AnsweringCompute()
    nodes = [LIAR, "node-b", "node-c"]
    async with requester(tmp_path, nodes, compute=compute) as req:
        await req.orch.submit_job(verified_job(3))
        asks = {node: ask for node, ask in [await compute.next("ask") for _ in nodes]}
        assert all(isinstance(a, AskForBidRequest) and a.answer_linger > 0 for a in asks.values())
        # The liar's replica failed verification, and the liar has one disagreement.
        (mine,) = compute.answered
        assert req.orch.store.get_execution(mine).compute_state == E.FAILED
        assert reputation(req.orch) == {LIAR: (0, 1)}
        # Its next ask acknowledges the refused one (the node forgets it), once.
        await req.orch.submit_job(verified_job(3))
        again = {node: ask for node, ask in [await compute.next("ask") for _ in nodes]}
        liar_ask = again[LIAR]
        assert isinstance(liar_ask, AskForBidRequest)
        assert liar_ask.applied_callbacks == (8,)
        assert reputation(req.orch) == {LIAR: (0, 1)}
