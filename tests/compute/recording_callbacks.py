"""A real OrchestratorCallbacks for tests: it records what it receives, and can be told to
be unreachable for its first N calls (as a requester that is down would be)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bacalhau.compute import Callback
from bacalhau.errors import Unavailable
from bacalhau.models import BidResult, ComputeFailure, RunResult


@dataclass
class Received:
    requester_id: str
    message: Callback


class RecordingCallbacks:
    def __init__(self, *, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.received: list[Received] = []
        self._changed = asyncio.Condition()

    async def on_bid_complete(self, requester_id: str, result: BidResult) -> None:
        await self._receive(requester_id, result)

    async def on_run_complete(self, requester_id: str, result: RunResult) -> None:
        await self._receive(requester_id, result)

    async def on_compute_failure(self, requester_id: str, failure: ComputeFailure) -> None:
        await self._receive(requester_id, failure)

    async def _receive(self, requester_id: str, message: Callback) -> None:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            raise Unavailable(f"requester {requester_id} is unreachable")
        async with self._changed:
            self.received.append(Received(requester_id, message))
            self._changed.notify_all()

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
