"""Pre-approved asks to one compute node, made in one turn of the requester's event loop,
sent as one AskForBids call.

Under load a requester makes several asks to the same node in one turn (a burst of submits
handled together); each AskForBid costs a round trip and two signatures on both sides, more
than the rest of the ask. :class:`AskBatches` has the first ask of a turn wait for the turn
to end, then sends it alone (nothing joined it: no added cost but one turn) or with those
that joined it. Each caller gets its own answer or its own error. A node that does not serve
AskForBids is asked one call at a time from then on.

Asks are grouped by engine as well as by node: a batch is answered once every ask in it has
its answer, and an ask whose run outlasts the linger holds its batch that long; runs of one
engine are alike (a Docker job never ends within a linger; a WASM job usually does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Histogram

from bacalhau._metrics import of_role
from bacalhau._turns import Joined, TurnGroups
from bacalhau.errors import Unavailable
from bacalhau.models import AskAnswer, AskForBidRequest

__all__ = ["MAX_BATCH_ASKS", "AskBatches", "BatchesUnsupported"]

#: The most asks one AskForBids call carries (a node refuses more); a larger turn is split.
MAX_BATCH_ASKS = 128

#: Served with the requester's other metrics (``/metrics`` on its API port).
ASKS_PER_CALL = Histogram(
    "bacalhau_asks_per_call",
    "Pre-approved asks sent per call to a compute node (AskForBid: 1; AskForBids: several).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
of_role("requester", ASKS_PER_CALL)

#: What one ask of a batch came to: its answer (None: no callbacks), or its error.
Outcome = AskAnswer | Exception | None
_Waiting = Joined[AskForBidRequest, AskAnswer | None]


class BatchesUnsupported(Exception):
    """The node does not serve AskForBids (an older node): ask it one call at a time."""


class AskBatches:
    """Groups a turn's pre-approved asks per node and engine; see the module.

    ``single`` sends one ask (AskForBid); ``batch`` sends several (AskForBids) and returns
    each one's outcome in order, or raises :class:`BatchesUnsupported`, or raises for all.
    """

    def __init__(
        self,
        single: Callable[[str, AskForBidRequest], Awaitable[AskAnswer | None]],
        batch: Callable[[str, Sequence[AskForBidRequest]], Awaitable[list[Outcome]]],
    ) -> None:
        self._single = single
        self._batch = batch
        self._turns: TurnGroups[tuple[str, str], AskForBidRequest, AskAnswer | None] = TurnGroups(
            lambda key, joined: self._send_all(key[0], joined)
        )
        self._unbatched: set[str] = set()
        #: How many asks went out in batches, and in how many calls (for tests and metrics).
        self.batched_asks = 0
        self.batch_calls = 0

    async def ask(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        """Send ``request`` with the other asks of this turn for the same node and engine."""
        if node_id in self._unbatched:
            return await self._single(node_id, request)
        return await self._turns.run((node_id, _engine(request)), request, self._lead)

    async def close(self) -> None:
        """Stop the batches under way; their callers get :class:`Unavailable`."""
        await self._turns.close()

    async def _lead(
        self, key: tuple[str, str], request: AskForBidRequest, joined: list[_Waiting]
    ) -> AskAnswer | None:
        node_id = key[0]
        if not joined:
            ASKS_PER_CALL.observe(1)
            return await self._single(node_id, request)
        mine: asyncio.Future[AskAnswer | None] = asyncio.get_running_loop().create_future()
        self._send_all(node_id, [(request, mine), *joined])
        return await mine

    def _send_all(self, node_id: str, waiting: list[_Waiting]) -> None:
        for start in range(0, len(waiting), MAX_BATCH_ASKS):
            self._turns.spawn(self._send(node_id, waiting[start : start + MAX_BATCH_ASKS]))

    async def _send(self, node_id: str, waiting: list[_Waiting]) -> None:
        live = [(request, answer) for request, answer in waiting if not answer.done()]
        try:
            if len(live) == 1:
                ASKS_PER_CALL.observe(1)
                await _settle(live[0][1], self._single(node_id, live[0][0]))
                return
            if not live:
                return
            try:
                outcomes = await self._batch(node_id, [request for request, _ in live])
            except BatchesUnsupported:
                self._unbatched.add(node_id)
                await asyncio.gather(
                    *(_settle(answer, self._single(node_id, r)) for r, answer in live)
                )
                return
            except Exception as exc:
                for _, answer in live:
                    if not answer.done():
                        answer.set_exception(exc)
                return
            self.batched_asks += len(live)
            self.batch_calls += 1
            ASKS_PER_CALL.observe(len(live))
            for (_, answer), outcome in zip(live, outcomes, strict=True):
                if answer.done():
                    continue
                if isinstance(outcome, Exception):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)
        except asyncio.CancelledError:
            for _, answer in live:
                if not answer.done():
                    answer.set_exception(Unavailable("the ask was dropped: the client is closing"))
            raise


async def _settle(
    answer: asyncio.Future[AskAnswer | None], sending: Awaitable[AskAnswer | None]
) -> None:
    try:
        result = await sending
    except Exception as exc:
        if not answer.done():
            answer.set_exception(exc)
    else:
        if not answer.done():
            answer.set_result(result)


def _engine(request: AskForBidRequest) -> str:
    job = request.execution.job
    return job.tasks[0].engine.type.lower() if job is not None and job.tasks else ""
