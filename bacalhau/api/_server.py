"""The REST server: Bacalhau's v1 API over aiohttp, in front of an orchestrator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from bacalhau._metrics import Role
from bacalhau.api import _agent, _auth_rest, _data, _jobs, _logs, _nodes
from bacalhau.api._api_metrics import metrics_middleware
from bacalhau.api._authz import Authorizer
from bacalhau.api._context import CONTEXT, ApiContext
from bacalhau.api._cors import enable_cors
from bacalhau.api._errors import JsonErrorRequestHandler, error_middleware, stamp_request_id
from bacalhau.api._metrics import add_routes as _add_metrics_routes
from bacalhau.api._sites import start_site
from bacalhau.models import SpecConfig, now_ns
from bacalhau.orchestrator._api import OrchestratorAPI

#: Largest request body accepted unless configured otherwise (``max_job_size``): jobs carry
#: inline WASM modules as data URLs, but a spec of many megabytes is costly for every reader.
DEFAULT_MAX_JOB_SIZE = 4 * 1024 * 1024
#: How long a job submission's body may take to arrive (4 MiB at 64 KiB/s takes a minute).
DEFAULT_BODY_SECONDS = 120.0


def build_app(
    orchestrator: OrchestratorAPI,
    *,
    agent_config: Mapping[str, Any] | None = None,
    max_job_size: int = DEFAULT_MAX_JOB_SIZE,
    gossip_metrics: Callable[[], Mapping[str, Any]] | None = None,
    result_rewriter: Callable[[SpecConfig], SpecConfig] | None = None,
    content: _data.ContentStore | None = None,
    max_upload: int = _data.DEFAULT_MAX_UPLOAD_BYTES,
    authorizer: Authorizer | None = None,
    metrics_roles: Collection[Role] | None = None,
    body_timeout: float = DEFAULT_BODY_SECONDS,
) -> web.Application:
    """The aiohttp application serving the v1 API (for embedding; most callers want
    :class:`ApiServer`). With an ``authorizer`` every request must be allowed by it;
    without one the API is open, and its requests go through no authentication code."""
    middlewares: list[Middleware] = [metrics_middleware, error_middleware]
    if authorizer is not None:
        middlewares.append(_auth_rest.auth_middleware(authorizer))
    app = web.Application(middlewares=middlewares, client_max_size=max_job_size)
    app.on_response_prepare.append(stamp_request_id)
    app[CONTEXT] = ApiContext(
        orchestrator=orchestrator,
        started_ns=now_ns(),
        agent_config=dict(agent_config or {}),
        max_job_size=max_job_size,
        body_timeout=body_timeout,
        gossip_metrics=gossip_metrics,
    )
    if result_rewriter is not None:
        app[_jobs.RESULT_REWRITER] = result_rewriter
    _jobs.add_routes(app)
    _logs.add_routes(app)
    _nodes.add_routes(app)
    _agent.add_routes(app)
    _auth_rest.add_routes(app, authorizer)
    _add_metrics_routes(app, metrics_roles)
    if content is not None:
        _data.add_routes(app, content, max_upload=max_upload)
    enable_cors(app)
    return app


#: A connection with no request in progress is closed after this long: idle after its last
#: answer, or never done sending a request's head (a client holding connections open, a
#: byte at a time, would otherwise keep their descriptors for good). nginx closes at 60-75 s.
DEFAULT_IDLE_SECONDS = 60.0


class _JsonErrorServer(web.Server):
    """aiohttp's connection factory, building connections that answer protocol-level errors
    with the JSON error body."""

    def __call__(self) -> JsonErrorRequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp offers no hook for the handler class; the server object is aiohttp's own,
        # only its factory method changes (tests/api/test_limits.py speaks raw HTTP to
        # notice if an upgrade breaks this).
        server.__class__ = _JsonErrorServer
        return server


class ApiServer:
    """Serves the v1 REST API for ``orchestrator`` on ``host:port`` (port 0 picks a free one).

    An async context manager: the socket is bound on entry (:attr:`port` is then the real
    port) and closed on exit, ending any long-polls in flight.
    """

    def __init__(
        self,
        orchestrator: OrchestratorAPI,
        *,
        host: str = "0.0.0.0",
        port: int = 1234,
        agent_config: Mapping[str, Any] | None = None,
        max_job_size: int = DEFAULT_MAX_JOB_SIZE,
        gossip_metrics: Callable[[], Mapping[str, Any]] | None = None,
        result_rewriter: Callable[[SpecConfig], SpecConfig] | None = None,
        content: _data.ContentStore | None = None,
        max_upload: int = _data.DEFAULT_MAX_UPLOAD_BYTES,
        authorizer: Authorizer | None = None,
        metrics_roles: Collection[Role] | None = None,
        idle_timeout: float = DEFAULT_IDLE_SECONDS,
        body_timeout: float = DEFAULT_BODY_SECONDS,
    ) -> None:
        """``gossip_metrics``: this node's gossip counters (records applied and rejected,
        probes, members by liveness) for ``/api/v1/agent/debug``; ``authorizer``: who may
        call what (the node's ``API.Auth.Users``), None for an open API; ``metrics_roles``:
        the node's roles, whose series ``/metrics`` serves (None: every series);
        ``idle_timeout``: seconds after which a connection with no request in progress is
        closed; ``body_timeout``: seconds a job submission's body may take to arrive."""
        self._idle_timeout = idle_timeout
        self._app = build_app(
            orchestrator,
            agent_config=agent_config,
            max_job_size=max_job_size,
            gossip_metrics=gossip_metrics,
            result_rewriter=result_rewriter,
            content=content,
            max_upload=max_upload,
            authorizer=authorizer,
            metrics_roles=metrics_roles,
            body_timeout=body_timeout,
        )
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (valid once started)."""
        return self._port

    @property
    def url(self) -> str:
        """A base URL clients on this machine can use."""
        host = local_address(self._host)
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        runner = _AppRunner(
            self._app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            keepalive_timeout=self._idle_timeout,
        )
        self._port = await start_site(runner, self._host, self._requested_port)
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._app[CONTEXT].closing.set()
        await asyncio.sleep(0)  # let long-polls see the signal before connections close
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def local_address(host: str) -> str:
    """The host a client on this machine dials for a server bound to ``host`` (a wildcard
    means loopback), bracketed when it is an IPv6 address, ready for ``host:port``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]" if ":" in host else host
