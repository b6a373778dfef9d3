"""A real OrchestratorCallbacks for tests: it records what it receives (and each call's
batch), can be told to be unreachable for its first N calls (as a requester that is down
would be), and to refuse the callbacks of given executions (as a requester that answers no)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bacalhau.compute import Callback
from bacalhau.errors import BacalhauError, Unavailable


@dataclass
class Received:
    requester_id: str
    message: Callback


class RecordingCallbacks:
    def __init__(self, *, fail_first: int = 0, fail_with: BacalhauError | None = None) -> None:
        """``fail_first`` calls fail as a whole, with ``fail_with`` (else as unreachable)."""
        self.fail_first = fail_first
        self.fail_with = fail_with
        self.attempts = 0
        self.failures = 0
        self.received: list[Received] = []
        #: Each delivered call's callbacks, in order.
        self.batches: list[list[Callback]] = []
        #: Execution ID -> the error its callbacks are refused with.
        self.refuse: dict[str, BacalhauError] = {}
        self._changed = asyncio.Condition()

    async def deliver_callbacks(
        self, requester_id: str, callbacks: Sequence[Callback]
    ) -> list[BaseException | None]:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            self.failures += 1
            raise self.fail_with or Unavailable(f"requester {requester_id} is unreachable")
        outcomes: list[BaseException | None] = []
        async with self._changed:
            self.batches.append(list(callbacks))
            for message in callbacks:
                refusal = self.refuse.get(message.execution_id)
                if outcomes and isinstance(outcomes[-1], BacalhauError) and outcomes[-1].retryable:
                    # As a requester does: nothing after one that may pass is applied.
                    refusal = Unavailable("an earlier callback must arrive first")
                outcomes.append(refusal)
                if refusal is None:
                    self.received.append(Received(requester_id, message))
            self._changed.notify_all()
        return outcomes

    def messages(self, execution_id: str | None = None) -> list[Callback]:
        return [
            r.message
            for r in self.received
            if execution_id is None or r.message.execution_id == execution_id
        ]

    async def wait_for(
        self, execution_id: str, kind: type, *, count: int = 1, timeout: float = 20.0
    ) -> list[Callback]:
        """Wait until ``count`` callbacks of ``kind`` arrived for ``execution_id``."""

        def matching() -> list[Callback]:
            return [m for m in self.messages(execution_id) if isinstance(m, kind)]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()
