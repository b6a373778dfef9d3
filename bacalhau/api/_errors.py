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

import itertools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from bacalhau._json import ORJSON_STRICT
from bacalhau.api._context import context
from bacalhau.api._cors import is_preflight, preflight
from bacalhau.errors import BacalhauError, wire_details

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Codes for the HTTP errors aiohttp raises itself (routing, body size).
_HTTP_CODES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: "RequestEntityTooLarge",
    414: "URITooLong",
    431: "RequestHeaderFieldsTooLarge",
}

_SURROGATES = re.compile("[\ud800-\udfff]")


def dumps(body: Any) -> str:
    """Compact JSON; never HTML-escaped (result URLs keep their ``&``)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def encode_json(body: Any) -> bytes:
    """``body`` as UTF-8 JSON. Text that cannot be UTF-8 (lone surrogates kept by an older
    version's store) is answered with U+FFFD in its place rather than failing the request."""
    try:
        # Several times faster than the standard library on a job's inline module (a 39 KB
        # string), and the same compact, unescaped UTF-8.
        return orjson.dumps(body, option=ORJSON_STRICT)
    except TypeError:
        pass
    text = dumps(body)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text).encode("utf-8")


def json_response(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(body), status=status, content_type="application/json")


#: Request IDs made here: a per-process prefix and a counter (a UUID costs a system call for
#: its randomness on every answer; clients only echo the ID back).
_ID_PREFIX = uuid.uuid4().hex[:12]
_next_id = itertools.count(1).__next__


def request_id(request: web.Request) -> str:
    """The request's own ``X-Request-ID``, or one made for it."""
    return request.headers.get("X-Request-ID") or f"{_ID_PREFIX}-{_next_id()}"


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries an ``X-Request-ID``, as Bacalhau's request-ID middleware sets
    it (errors carry theirs already)."""
    if "X-Request-ID" not in response.headers:
        response.headers["X-Request-ID"] = request_id(request)


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
    rid = request_id(request)
    if request.method == "HEAD":
        return web.Response(status=status, headers={"X-Request-ID": rid})
    return _error_body_response(
        rid,
        status=status,
        code=code,
        message=message,
        component=component,
        hint=hint,
        details=details,
    )


def _error_body_response(
    request_id: str,
    *,
    status: int,
    code: str,
    message: str,
    component: str,
    hint: str = "",
    details: dict[str, str] | None = None,
) -> web.Response:
    headers = {"X-Request-ID": request_id}
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
        body=encode_json(body), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_preflight(request):
        # The outermost middleware: a browser's preflight is answered before routing and
        # authentication (see ``_cors``).
        return preflight(request)
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
            details=wire_details(err),
        )
    except RequestPayloadError as exc:
        # The body could not be read as sent: a Content-Encoding it does not match, a
        # chunked body cut short. The client's fault, not the server's.
        return error_response(
            request,
            status=400,
            code="BadRequest",
            message=f"the request body could not be read: {exc}",
            component="APIServer",
            hint="send the body as its Content-Encoding header says (or without that header)",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        hint = ""
        if exc.status == 404:
            hint = "see the v1 API reference for the available endpoints"
        message = f"{exc.reason}: {request.method} {request.path}"
        if exc.status == 408:
            message = f"{exc.text}: {request.method} {request.path}"
            hint = "send the whole body at once, or check the network between client and server"
        if exc.status == 413:
            limit = context(request).max_job_size
            message = (
                f"the request body is larger than this server accepts ({limit} bytes): "
                f"{request.method} {request.path}"
            )
            hint = (
                "keep large data out of the job spec (use an input source), or raise the "
                "node's max_job_size setting"
            )
        resp = error_response(
            request,
            status=exc.status,
            code=_HTTP_CODES.get(exc.status, "BadRequest"),
            message=message,
            component="APIServer",
            hint=hint,
        )
        if exc.status in (408, 413):
            # The body was not read (whole): what is left of it must not be read as the next
            # request, nor waited for.
            resp.force_close()
        return resp
    except ConnectionResetError:
        # The client went away mid-request (a body cut short): nothing to answer, and not the
        # server's fault (the connection's handler logs it as such, see log_exception).
        raise
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


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering the errors it raises itself before any route
    runs (request line or headers over the size limits, malformed HTTP) with Bacalhau's
    error body instead of plain text."""

    __slots__ = ()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # Malformed HTTP and a client gone mid-request are the client's doing: one line, not
        # a traceback at ERROR that any client could flood the log with. Anything else is
        # logged as aiohttp does.
        exc = kw.get("exc_info")
        if isinstance(exc, ConnectionResetError):
            log.debug("client %s left mid-request", _peer(self))
            return
        if isinstance(exc, HttpProcessingError):
            what = str(exc).replace("\n", " ")
            log.info("refused malformed HTTP from %s: %s", _peer(self), what[:200])
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The parent logs, refuses when a response was already started, and closes the
        # connection; only the body is ours.
        super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            # Which line (aiohttp says only how many bytes): the URL starts with "/" (or a
            # scheme); anything else is a header. 414 and 431 say so, as HTTP has them.
            line = bytes(exc.args[0][:8]) if exc.args and exc.args[0] else b""
            url = line.startswith((b"/", b"http"))
            status = 414 if url else 431
            limit = exc.args[1] if len(exc.args) > 1 else "8190"
            text = (
                f"the {'URL' if url else 'header'} is longer than this server reads ({limit} bytes)"
            )
            hint = (
                "send long queries in the body instead"
                if url
                else "keep each header under 8 KiB (large credentials or cookies?)"
            )
        elif status >= 500:
            text = "internal server error"
            hint = "this is a bug in the server; its log has the details"
        else:
            text = "the request could not be read"
            if message:
                text += ": " + message.encode("ascii", "backslashreplace").decode()[:200]
            hint = "keep the URL and each header under 8 KiB, and send well-formed HTTP/1.1"
        resp = _error_body_response(
            str(uuid.uuid4()),
            status=status,
            code=_HTTP_CODES.get(status, "BadRequest" if status < 500 else "InternalError"),
            message=text,
            component="APIServer",
            hint=hint,
        )
        resp.force_close()
        return resp


def _peer(handler: RequestHandler) -> str:
    """The client's address, as ``host:port``, for a log line."""
    transport = handler.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "an unknown client"
