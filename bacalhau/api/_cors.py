"""Cross-origin requests (CORS), answered as Bacalhau's API answers them: any origin may
call it (``AllowOrigins: ["*"]``), so a dashboard served from another origin, Bacalhau's
Web UI among them, can use the API from a browser.

A preflight (``OPTIONS``) is answered for every path by the outermost middleware, before
routing and authentication: a browser sends it without credentials, and it reveals nothing
(a catch-all route would turn every unknown path's 404 into a 405). Every answer to a
request that names an ``Origin`` allows it; requests without one (every client but a
browser) are left as they were. Hand-written rather than ``aiohttp-cors``: that library
configures CORS route by route, and its preflight routes would go through the
authentication middleware, which refuses requests without credentials.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["enable_cors", "is_preflight", "preflight"]

_ALLOW_METHODS = "GET, HEAD, PUT, PATCH, POST, DELETE"
#: How long a browser may keep a preflight's answer (seconds).
_MAX_AGE = "600"


def is_preflight(request: web.BaseRequest) -> bool:
    """Whether ``request`` is a browser's CORS preflight (answered without credentials)."""
    return request.method == "OPTIONS"


def preflight(request: web.BaseRequest) -> web.Response:
    """The answer to a preflight: any origin, the API's methods, the headers asked for."""
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": _ALLOW_METHODS,
        "Access-Control-Max-Age": _MAX_AGE,
    }
    asked = request.headers.get("Access-Control-Request-Headers")
    if asked:
        headers["Access-Control-Allow-Headers"] = asked
    return web.Response(status=204, headers=headers)


async def _allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    if "Origin" in request.headers:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")


def enable_cors(app: web.Application) -> None:
    """Allow any origin in the answers to browsers (preflights: :func:`preflight`)."""
    app.on_response_prepare.append(_allow_origin)
