"""``GET /metrics``: the node's Prometheus metrics, in the text exposition format.

The metrics are prometheus-client's (see :mod:`bacalhau.orchestrator._metrics`); this
module serves them and measures event-loop lag while the API server runs.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bacalhau.orchestrator._metrics import EVENT_LOOP_LAG_SECONDS

#: How often the loop-lag probe wakes (seconds).
LAG_PROBE_INTERVAL = 0.25
_LAG_TASK = web.AppKey("metrics_lag_probe", asyncio.Task[None])


async def metrics(_request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _probe_lag() -> None:
    """Sleep a fixed interval and record how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PROBE_INTERVAL)
        EVENT_LOOP_LAG_SECONDS.observe(max(0.0, loop.time() - start - LAG_PROBE_INTERVAL))


async def _start_probe(app: web.Application) -> None:
    app[_LAG_TASK] = asyncio.create_task(_probe_lag(), name="event-loop-lag")


async def _stop_probe(app: web.Application) -> None:
    task = app.get(_LAG_TASK)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(_start_probe)
    app.on_cleanup.append(_stop_probe)
