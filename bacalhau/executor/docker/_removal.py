"""Removing containers for good: one task per container, owned by the executor.

A caller that is cancelled stops waiting, not removing, and two callers share one removal.
A removal the engine reports as already in progress (409) may still fail (a container whose
processes are slow to die): only the engine saying "no such container" proves it is gone,
so the task asks again until it does, or leaves the container to the reaper after a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import docker.errors

from bacalhau.executor.docker._errors import ENGINE_ERRORS, explain

__all__ = ["Removals"]

_log = logging.getLogger(__name__)

#: How long one removal keeps retrying before it leaves the container to the reaper.
_REMOVE_PATIENCE = 120.0
_REMOVE_FIRST_DELAY = 0.05
_REMOVE_MAX_DELAY = 1.0


class Removals:
    """The container removals under way, by container ID or name."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def pending(self, container: str) -> asyncio.Task[None] | None:
        """The removal of ``container`` under way, if any."""
        return self._tasks.get(container)

    def all(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    async def remove(self, api: Any, container: str) -> None:
        """Kill and remove a container, returning once it is gone (or left to the reaper)."""
        task = self._tasks.get(container)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                _remove_until_gone(api, container), name=f"docker-remove-{container[:12]}"
            )
            self._tasks[container] = task
            task.add_done_callback(lambda _: self._tasks.pop(container, None))
        await asyncio.shield(task)


async def _remove_until_gone(api: Any, container: str) -> None:
    delay = _REMOVE_FIRST_DELAY
    give_up = time.monotonic() + _REMOVE_PATIENCE
    while True:
        try:
            await asyncio.to_thread(api.remove_container, container, v=True, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            reason = explain(e)
            if e.status_code != 409:
                _log.info("removing container %s failed, retrying: %s", container, reason)
        except ENGINE_ERRORS as e:
            reason = str(e)
        if time.monotonic() > give_up:
            _log.warning(
                "container %s is still there after %.0fs (%s); the reaper will retry",
                container,
                _REMOVE_PATIENCE,
                reason,
            )
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, _REMOVE_MAX_DELAY)
