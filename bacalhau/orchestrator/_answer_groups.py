"""The answers one node's batch of asks brought back, applied in one store transaction.

An AskForBids call answers several asks at once, and their callers resume in the same turn
of the event loop; each applied its answer's callbacks in a transaction of its own.
:class:`AnswerGroups` has the first of a turn wait for the turn to end and apply every answer
from that node that joined it, one after the other in one transaction: each answer's
callbacks are applied as alone (a nested block, each callback in its own), so an answer's
failures are its own, and one commit serves them all. Outcomes are handed out only once the
commit went through: a caller acknowledges what it was told was applied, and a node forgets
what is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager

from bacalhau._turns import Joined, TurnGroups
from bacalhau.models import BidResult, ComputeFailure, RunResult

__all__ = ["AnswerGroups"]

Callbacks = Sequence[BidResult | RunResult | ComputeFailure]
Outcomes = list[BaseException | None]
_Joined = Joined[Callbacks, Outcomes]


class AnswerGroups:
    """Applies the answers of one turn per node together; see the module.

    ``apply`` applies one answer's callbacks (in a store transaction of its own, which nests
    in ``transaction``) and must not suspend while it does.
    """

    def __init__(
        self,
        apply: Callable[[Callbacks], Awaitable[Outcomes]],
        transaction: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._apply = apply
        self._transaction = transaction
        self._turns: TurnGroups[str, Callbacks, Outcomes] = TurnGroups(
            lambda _node, joined: self._turns.spawn(self._apply_together(joined))
        )
        #: Answers applied with others, and the transactions that held them (for tests).
        self.grouped_answers = 0
        self.group_commits = 0

    async def apply(self, node_id: str, callbacks: Callbacks) -> Outcomes:
        """Apply ``callbacks`` (an answer of ``node_id``) with the others of this turn."""
        return await self._turns.run(node_id, callbacks, self._lead)

    async def _lead(self, _node: str, callbacks: Callbacks, joined: list[_Joined]) -> Outcomes:
        if not joined:
            return await self._apply(callbacks)
        mine: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
        await self._apply_together([(callbacks, mine), *joined])
        return mine.result()

    async def _apply_together(self, answers: list[_Joined]) -> None:
        results: list[Outcomes | Exception] = []
        try:
            with self._transaction():
                for callbacks, _ in answers:
                    try:
                        results.append(await self._apply(callbacks))
                    except Exception as exc:  # undone alone (its own nested block)
                        results.append(exc)
        except Exception as exc:
            # The commit failed: nothing was applied, whatever each answer's outcome said.
            for _, outcome in answers:
                if not outcome.done():
                    outcome.set_exception(exc)
            return
        self.grouped_answers += len(answers)
        self.group_commits += 1
        for (_, outcome), result in zip(answers, results, strict=True):
            if outcome.done():
                continue
            if isinstance(result, Exception):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)
