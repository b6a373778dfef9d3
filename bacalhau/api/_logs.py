"""``GET /api/v1/orchestrator/jobs/{id}/logs``: an execution's output, live.

Upgraded to a WebSocket it streams Bacalhau's frames, one JSON text frame per line::

    {"value": {"Type": 1, "Line": "hello\\n"}, "resume": "e-...:6:0"}   (1 stdout, 2 stderr)
    {"value": {"Type": 0, "Line": ""}, "error": "...", "code": "NotFound"}   then close (1000)

and closes normally after the last line. ``code`` (the stable error code) and ``resume`` are
additions: the SDK raises the right error class by the code, and a follower whose stream
broke (the requester restarted) asks again with ``resume=<the last line's token>``: the
output goes on from there, no line repeated or lost (see :class:`LogPosition`). A plain GET
(Bacalhau's Python client) answers the output written so far as text.

Each frame waits for the socket to take it, and the relay stops as soon as the client
closes: a slow or vanished follower never holds up the job or leaves a stream open. Nor does
a fast one hold up the node: a job printing short lines fast makes tens of thousands of
frames per chunk of output, and a relay gives the event loop back after each
:data:`RELAY_SLICE_SECONDS` of sending (else the node, busy for seconds, would miss its
members' heartbeats and hold them dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import orjson
from aiohttp import WSMsgType, web

from bacalhau.api._auth_rest import caller
from bacalhau.api._context import context
from bacalhau.api._query import Query
from bacalhau.errors import BacalhauError, BadQuery, InternalError
from bacalhau.models import TAIL_FLAG_LINES, LogChunk, LogPosition, LogStream, PositionedLines

__all__ = ["add_routes"]


#: The longest a relay sends frames before it lets the event loop run other work.
RELAY_SLICE_SECONDS = 0.005


def _frame(stream: LogStream, line: str, position: LogPosition) -> str:
    # orjson: a frame per line, and a job may print short lines by the million.
    value = orjson.dumps(line).decode()
    token = position.token()
    if not token:
        return f'{{"value":{{"Type":{int(stream)},"Line":{value}}}}}'
    return f'{{"value":{{"Type":{int(stream)},"Line":{value}}},"resume":"{token}"}}'


def _error_frame(err: BacalhauError) -> str:
    return json.dumps(
        {
            "value": {"Type": 0, "Line": ""},
            "error": err.message,
            "code": err.code,
            "hint": err.hint or "",
        }
    )


async def _open(request: web.Request, *, follow: bool) -> AsyncIterator[LogChunk]:
    q = Query(request)
    return await context(request).orchestrator.stream_logs(
        request.match_info["job_id"],
        execution_id=q.text("execution_id"),
        follow=follow,
        tail=_tail(q),
        namespace=q.text("namespace"),
        version=q.count("job_version"),
        client=caller(request),
        resume=LogPosition.parse(q.text("resume")) if q.text("resume") else None,
    )


def _tail(q: Query) -> int:
    """``tail``: a count of lines, or Bacalhau's flag (``true``: the log's last lines)."""
    word = q.text("tail").strip().lower()
    if word in ("true", "false"):
        return TAIL_FLAG_LINES if word == "true" else 0
    if word and not word.isdigit():
        raise BadQuery(f"tail must be a number of lines, true or false, got {word!r}", field="tail")
    return q.count("tail")


async def job_logs(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=30.0)
    if not ws.can_prepare(request).ok:
        return await _plain_logs(request)
    await ws.prepare(request)
    relay = asyncio.create_task(_relay(request, ws))
    # Reading the socket is how a client's close (or a dead connection) is noticed even when
    # the job prints nothing: then the relay is cancelled, closing the stream to the node.
    reader = asyncio.create_task(_drain(ws))
    try:
        await asyncio.wait({relay, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        if not relay.done():
            relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    await ws.close()
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


async def _relay(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        # Read in here: the socket is open, so a bad parameter is answered in a frame.
        chunks = await _open(request, follow=Query(request).flag("follow"))
        lines = PositionedLines()
        sender = _SlicedSender(ws)
        try:
            async for chunk in chunks:
                await sender.send(lines.feed(chunk))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await sender.send(lines.flush())
    except (ConnectionResetError, ConnectionError):
        return  # the follower left
    except BacalhauError as err:
        with contextlib.suppress(ConnectionError):
            await ws.send_str(_error_frame(err))
    except Exception as exc:  # the socket is open: say so in a frame rather than drop it
        with contextlib.suppress(ConnectionError):
            await ws.send_str(_error_frame(InternalError(f"streaming logs failed: {exc}")))


class _SlicedSender:
    """Sends line frames, giving the event loop back after each slice of sending."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._slice_end = self._loop.time() + RELAY_SLICE_SECONDS

    async def send(self, lines: list[tuple[LogStream, str, LogPosition]]) -> None:
        for line in lines:
            # Awaits only when the socket's buffer is full: a fast reader never pauses it.
            await self._ws.send_str(_frame(*line))
            if self._loop.time() >= self._slice_end:
                await asyncio.sleep(0)
                self._slice_end = self._loop.time() + RELAY_SLICE_SECONDS


async def _plain_logs(request: web.Request) -> web.StreamResponse:
    """Bacalhau's Python client does a plain GET: answer the output so far as text."""
    chunks = await _open(request, follow=False)
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    try:
        async for chunk in chunks:
            await resp.write(chunk.data)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    await resp.write_eof()
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/orchestrator/jobs/{job_id}/logs", job_logs)
