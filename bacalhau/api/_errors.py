"""The one place where errors become HTTP responses.

Handlers raise :class:`~bacalhau.errors.BacalhauError` (or let aiohttp raise its own HTTP
exceptions for unknown routes and methods); :func:`error_middleware` turns every one of them
into Bacalhau's error body::

    {"Status": 404, "Message": "...", "RequestID": "...", "Code": "NotFound",
     "Component": "JobStore", "Hint": "...", "Details": {...}}

Choice recorded here: an invalid job spec answers 400 with ``Code: "InvalidJobSpec"`` and
``Details.Field`` naming the field at fault, where Bacalhau answers 400 with the generic
``"InternalError"``. Clients match on codes, so a stable, specific code is the useful one; the
status (what Bacalhau's clients act on) is unchanged.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bacalhau.errors import BacalhauError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Codes for the HTTP errors aiohttp raises itself (routing, body size).
_HTTP_CODES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
}


def dumps(body: Any) -> str:
    """Compact JSON; never HTML-escaped (result URLs keep their ``&``)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def json_response(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json")


def error_response(
    request: web.Request,
    *,
    status: int,
    code: str,
    message: str,
    component: str,
    hint: str = "",
    details: dict[str, str] | None = None,
) -> web.Response:
    request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
    headers = {"X-Request-ID": request_id}
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    body: dict[str, Any] = {
        "Status": status,
        "Message": message,
        "RequestID": request_id,
        "Code": code,
        "Component": component,
    }
    if hint:
        body["Hint"] = hint
    if details:
        body["Details"] = dict(details)
    return web.Response(
        text=dumps(body), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BacalhauError as err:
        return error_response(
            request,
            status=err.http_status,
            code=err.code,
            message=err.message,
            component=err.component,
            hint=err.hint,
            details=err.details,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        hint = ""
        if exc.status == 404:
            hint = "see the v1 API reference for the available endpoints"
        elif exc.status == 413:
            hint = "the request body is too large for this server"
        return error_response(
            request,
            status=exc.status,
            code=_HTTP_CODES.get(exc.status, "BadRequest"),
            message=f"{exc.reason}: {request.method} {request.path}",
            component="APIServer",
            hint=hint,
        )
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(
            request,
            status=500,
            code="InternalError",
            message="internal server error",
            component="APIServer",
            hint="this is a bug in the server; its log has the details",
        )
