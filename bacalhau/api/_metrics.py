"""``GET /metrics``: the node's Prometheus metrics, in the text exposition format.

The metrics are prometheus-client's (see :mod:`bacalhau.orchestrator._metrics` and
:mod:`bacalhau.compute._metrics`); this module serves them, on the API port and on a port of
their own (:class:`MetricsServer`: ``bacalhau serve --metrics-port``, the only way to reach
a compute-only node's), and measures event-loop lag while it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from types import TracebackType

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bacalhau._metrics import EVENT_LOOP_LAG_SECONDS, Role, served_registry
from bacalhau.api._sites import start_site

log = logging.getLogger(__name__)

#: How often the loop-lag probe wakes (seconds).
LAG_PROBE_INTERVAL = 0.25
#: A lag this long is logged: near gossip's shortest suspicion (1 s by default), other
#: members may have suspected this node, or declared it dead, while its loop was blocked.
LAG_WARNING_SECONDS = 0.8


#: The roles of the node an app serves the metrics of (None: every series).
_ROLES = web.AppKey("metrics_roles", frozenset)


async def metrics(request: web.Request) -> web.Response:
    roles = request.app.get(_ROLES)
    body = generate_latest(served_registry(roles))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _probe_lag() -> None:
    """Sleep a fixed interval and record how much later than asked the loop woke us; a
    long lag is also logged, since it explains a node that others saw flap."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PROBE_INTERVAL)
        lag = max(0.0, loop.time() - start - LAG_PROBE_INTERVAL)
        EVENT_LOOP_LAG_SECONDS.observe(lag)
        if lag >= LAG_WARNING_SECONDS:
            log.warning(
                "this node's event loop was blocked for %.1fs: other members may have "
                "suspected it meanwhile",
                lag,
            )


#: The loop's one lag probe and the apps serving /metrics that use it: a node serving the
#: metrics on its API port and on --metrics-port must not observe every sleep twice.
_probe: tuple[asyncio.Task[None], set[web.Application]] | None = None


async def _start_probe(app: web.Application) -> None:
    global _probe
    loop = asyncio.get_running_loop()
    if _probe is None or _probe[0].done() or _probe[0].get_loop() is not loop:
        _probe = (asyncio.create_task(_probe_lag(), name="event-loop-lag"), set())
    _probe[1].add(app)


async def _stop_probe(app: web.Application) -> None:
    global _probe
    if _probe is None or app not in _probe[1]:
        return
    task, users = _probe
    users.discard(app)
    if users:
        return
    _probe = None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(app: web.Application, roles: Collection[Role] | None = None) -> None:
    """Serve ``GET /metrics`` on ``app``: the series of a node with ``roles`` (None: all)."""
    if roles is not None:
        app[_ROLES] = frozenset(roles)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(_start_probe)
    app.on_cleanup.append(_stop_probe)


class MetricsServer:
    """Serves ``GET /metrics`` alone on ``host:port`` (port 0 picks a free one; anything
    else is 404). An async context manager: bound on entry (:attr:`port` is then the real
    port), closed on exit."""

    def __init__(
        self, *, host: str = "0.0.0.0", port: int = 0, roles: Collection[Role] | None = None
    ) -> None:
        """``roles``: the node's, whose series are served (None: every series)."""
        self._roles = roles
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (valid once started)."""
        return self._port

    async def __aenter__(self) -> MetricsServer:
        app = web.Application()
        add_routes(app, self._roles)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self._port = await start_site(runner, self._host, self._requested_port)
        self._runner = runner
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
