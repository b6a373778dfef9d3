"""The cap on what a container writes to its own filesystem.

A writable root lets a job install packages or keep state where its image expects, but what
it writes lands in the engine's storage (the overlay's upper directory), outside every folder
the executor caps: a job could fill the node's disk. Docker has no size option for overlay2
on a plain ext4 host (it needs xfs project quotas), so the executor measures instead, as
kubelet does for ephemeral storage: every few seconds it asks the engine for the container's
writable-layer size (``SizeRw``, which the engine computes for any storage driver, local or
remote), and past the cap it kills the container. The run then fails saying so.

Between two measures a job may write past the cap by what it writes in one interval; the cap
bounds the damage, it is not a quota. How often it measures follows the layer's growth (see
:func:`watch_writable_layer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bacalhau.executor.docker._errors import ENGINE_ERRORS

__all__ = ["MAX_INTERVAL", "next_wait", "watch_writable_layer", "writable_layer_size"]

_log = logging.getLogger(__name__)

#: The longest pause between two measures of a layer that does not grow.
MAX_INTERVAL = 10.0


async def writable_layer_size(api: Any, container_id: str) -> int | None:
    """The bytes ``container_id`` has written to its own filesystem, or None once gone."""
    found = await asyncio.to_thread(
        api.containers, all=True, filters={"id": container_id}, size=True
    )
    if not found:
        return None
    return int(found[0].get("SizeRw") or 0)


async def watch_writable_layer(
    api: Any, container_id: str, *, cap: int, interval: float, overflow: Callable[[int], None]
) -> None:
    """Measure ``container_id``'s writable layer until it passes ``cap``; then call
    ``overflow`` with the size seen and kill the container. Cancel it once the container has
    exited.

    The engine walks the layer's files to measure it, so a layer that does not grow is
    measured less and less often (up to every :data:`MAX_INTERVAL` seconds); one that grows
    is measured again before it could have used half its remaining room at its last rate,
    but never more often than every ``interval`` seconds.
    """
    wait = interval
    last: tuple[float, int] | None = None
    while True:
        await asyncio.sleep(wait)
        try:
            size = await writable_layer_size(api, container_id)
        except ENGINE_ERRORS as e:
            # The run's wait sees an engine that is gone; a slow answer is only a late measure.
            _log.debug("could not measure container %s: %s", container_id[:12], e)
            continue
        if size is None:
            return
        if size > cap:
            # Told before the kill: the run sees the exit, and stops this watch, at once.
            overflow(size)
            try:
                await asyncio.to_thread(api.kill, container_id)
            except ENGINE_ERRORS as e:
                # It exited on its own meanwhile, or the removal beat us to it.
                _log.debug("could not stop container %s: %s", container_id[:12], e)
            return
        now = time.monotonic()
        wait = next_wait(last, (now, size), cap=cap, least=interval)
        last = (now, size)


def next_wait(
    last: tuple[float, int] | None, seen: tuple[float, int], *, cap: int, least: float
) -> float:
    """Seconds until the next measure, given the last two (time, size) measures."""
    most = max(least, MAX_INTERVAL)
    if last is None:
        return least
    elapsed = seen[0] - last[0]
    grown = seen[1] - last[1]
    if elapsed <= 0 or grown <= 0:
        return most
    rate = grown / elapsed
    return min(most, max(least, (cap - seen[1]) / rate / 2))
