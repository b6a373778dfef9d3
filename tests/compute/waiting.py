"""Waiting in tests for state that offers no event to wait on (files, processes, the store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Return once ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls state that has no event to await
            await asyncio.sleep(0.005)
