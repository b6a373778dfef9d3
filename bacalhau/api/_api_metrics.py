"""What the public APIs serve, as Prometheus metrics: calls by route (REST) or method (gRPC)
and outcome, and how long they take.

Labels stay few: a REST call is counted by its route's pattern
(``/api/v1/orchestrator/jobs/{job_id}``), never its path, so job IDs never become series; a path
no route matches counts as ``unmatched``. Outcomes are the HTTP status or the gRPC status
name. Durations include long-polls and followed logs, which last as long as the client
waits: read them per route.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

from bacalhau._metrics import LATENCY_BUCKETS, of_role

__all__ = ["API_CALLS", "API_CALL_SECONDS", "MetricsInterceptor", "metrics_middleware"]

API_CALLS = Counter(
    "bacalhau_api_calls_total",
    "Calls to the public APIs, by API (rest, grpc), route or method, and outcome (HTTP status"
    " or gRPC status name).",
    ["api", "route", "outcome"],
)
API_CALL_SECONDS = Histogram(
    "bacalhau_api_call_seconds",
    "Time to answer a call to the public APIs (long-polls and followed logs included).",
    ["api", "route"],
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0, 300.0),
)
of_role("requester", API_CALLS, API_CALL_SECONDS)

_UNMATCHED = "unmatched"


def _route(request: web.Request) -> str:
    # A path no route matches has a system route without a resource (404, 405).
    resource = request.match_info.route.resource
    return _UNMATCHED if resource is None else resource.canonical


def _observe(api: str, route: str, outcome: str, started: float) -> None:
    API_CALLS.labels(api, route, outcome).inc()
    API_CALL_SECONDS.labels(api, route).observe(time.perf_counter() - started)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time each REST call (the outermost middleware: errors and refusals too)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        _observe("rest", _route(request), str(status), started)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts and times each call of the gRPC API (outermost: refused calls too)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # (the API has no client-streaming methods; reflection's is left)


def _outcome(context: Any, failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "UNKNOWN" if failed else "OK"


def _unary(inner: Any, method: str) -> Any:
    async def call(request: Any, context: Any) -> Any:
        started = time.perf_counter()
        failed = True
        try:
            response = await inner(request, context)
            failed = False
            return response
        finally:
            _observe("grpc", method, _outcome(context, failed), started)

    return call


def _streaming(inner: Any, method: str) -> Any:
    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        failed = True
        try:
            produced = inner(request, context)
            if inspect.isawaitable(produced):
                # A handler that writes with context.write() or only aborts (a refusal).
                await produced
            else:
                async for item in produced:
                    yield item
            failed = False
        finally:
            _observe("grpc", method, _outcome(context, failed), started)

    return call
