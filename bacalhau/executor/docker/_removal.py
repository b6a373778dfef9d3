"""Removing containers for good: one task per container, owned by the executor.

A caller that is cancelled stops waiting, not removing, and two callers share one removal.
A removal the engine reports as already in progress (409) may still fail (a container whose
processes are slow to die): only the engine saying "no such container" proves it is gone,
so the task asks again until it does, or leaves the container to the reaper after a while.

A run cancelled while the engine creates its container never learns the container's ID, yet
the engine goes on to create it: such a container is removed, by name, once the creation has
ended, by a task registered here at once, so closing the executor waits for it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
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
        await asyncio.shield(self.remove_later(api, container))

    def remove_later(self, api: Any, container: str) -> asyncio.Task[None]:
        """Have ``container`` killed and removed by a task of its own (the one under way, if
        any), without waiting; returns that task."""
        task = self._tasks.get(container)
        if task is None:
            task = self._track(container, _remove_until_gone(api, container))
        return task

    def remove_once_created(self, api: Any, name: str, creating: asyncio.Future[Any]) -> None:
        """Remove the container named ``name`` once ``creating`` (its creation) has ended.

        Whatever the creation's outcome: an engine that timed out answering may have made
        the container all the same, and removing a name that does not exist costs one call.
        """

        # A removal of that name already under way may end before the creation does.
        earlier = self._tasks.get(name)

        async def remove() -> None:
            await asyncio.gather(creating, *filter(None, [earlier]), return_exceptions=True)
            await _remove_until_gone(api, name)

        self._track(name, remove())

    def _track(self, container: str, removal: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            removal, name=f"docker-remove-{container[:12]}"
        )
        self._tasks[container] = task

        def forget(done: asyncio.Task[None]) -> None:
            # Only this task: a later removal of the same name may have taken its place.
            if self._tasks.get(container) is done:
                del self._tasks[container]

        task.add_done_callback(forget)
        return task


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
