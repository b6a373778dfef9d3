"""Following a job's output over the API's WebSocket (``/jobs/{id}/logs``), and going on
where it was when the stream breaks (the requester restarted)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp

from bacalhau.client._auth import explain_refusal
from bacalhau.client._cluster_calls import quote_id
from bacalhau.client._outage import Outage
from bacalhau.client._transport import Transport, _query
from bacalhau.errors import (
    BacalhauError,
    Forbidden,
    InternalError,
    Unauthorized,
    Unavailable,
    error_from_code,
)
from bacalhau.models import LogStream

__all__ = ["LogLine", "LogStreamLost", "resumed", "stream_log_lines"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of an execution's output, with its newline if it had one.

    ``resume`` is where the output goes on after this line (``<execution id>:<stdout
    bytes>:<stderr bytes>``): given back to the logs call, it reads on from there."""

    stream: LogStream
    text: str
    resume: str = field(default="", compare=False)


class LogStreamLost(Unavailable):
    """A log stream that broke off, or could not be opened, for want of the API (not an
    error the API answered): what a follower rides out."""


async def stream_log_lines(
    http: Transport,
    job_id: str,
    *,
    execution_id: str = "",
    follow: bool = False,
    tail: int = 0,
    namespace: str = "",
    version: int = 0,
    resume: str = "",
) -> AsyncIterator[LogLine]:
    """Lines as the server sends them (from the position ``resume`` if given); ends when
    the server closes the stream.

    An error frame becomes the matching :class:`~bacalhau.errors.BacalhauError` (by its code:
    an unknown job raises :class:`~bacalhau.errors.JobNotFound`'s family, ``NotFound``); a
    stream that breaks off instead of closing normally (the requester died, the connection
    dropped) raises :class:`LogStreamLost` (an :class:`~bacalhau.errors.Unavailable`), so
    that a cut-off output is never taken for the whole of it. Leaving the loop early closes
    the socket, which stops the relay on the server.
    """
    url = http.base_url + f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/logs"
    params = _query(
        {
            "execution_id": execution_id,
            "follow": follow,
            "tail": tail or None,
            "namespace": namespace,
            "job_version": version or None,
            "resume": resume,
        }
    )
    try:
        ws = await http.session().ws_connect(
            url, params=params, heartbeat=30.0, headers=http.api_headers
        )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (401, 403):
            # The handshake's answer carries no body to rebuild the error from.
            message = f"the API refused the logs of {job_id} (HTTP {exc.status})"
            refused: BacalhauError = (
                Unauthorized(message)
                if exc.status == 401
                else Forbidden(message, details={"RequiredCapability": "read:job"})
            )
            raise explain_refusal(refused, http.credentials) from None
        raise InternalError(f"the logs endpoint refused the WebSocket: HTTP {exc.status}") from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        lost = http.unreachable(exc)
        raise LogStreamLost(lost.message, hint=lost.hint) from None
    try:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise _broken_off(http, job_id, ws.close_code, msg.data)
            frame = json.loads(msg.data)
            if frame.get("error"):
                raise error_from_code(
                    str(frame.get("code") or "InternalError"),
                    str(frame["error"]),
                    hint=str(frame.get("hint") or "") or None,
                )
            value = frame.get("value") or {}
            kind = LogStream.STDERR if value.get("Type") == LogStream.STDERR else LogStream.STDOUT
            yield LogLine(kind, str(value.get("Line", "")), str(frame.get("resume") or ""))
        # The server closes with 1000 after the last line (or an error frame); anything else
        # (1006: the connection dropped without a close frame) cut the output short.
        if ws.close_code != aiohttp.WSCloseCode.OK:
            raise _broken_off(http, job_id, ws.close_code, None)
    finally:
        await ws.close()


def _broken_off(http: Transport, job_id: str, code: int | None, cause: object) -> LogStreamLost:
    """The error for a log stream that ended without the server closing it normally."""
    why = f"WebSocket closed with code {code}" if code else "the connection was lost"
    if isinstance(cause, BaseException) and str(cause):
        why += f": {cause}"
    return LogStreamLost(
        f"the log stream from the API at {http.base_url} ended unexpectedly ({why}); "
        "the output may be incomplete",
        hint=f"the requester may have stopped or restarted: once `bacalhau agent alive` "
        f"answers, follow the job again with `bacalhau job logs --follow {job_id}`",
    )


async def resumed(
    open_lines: Callable[[str], AsyncIterator[LogLine]], job_id: str, *, grace: float
) -> AsyncIterator[LogLine]:
    """The lines of ``open_lines("")``; when that stream is lost (:class:`LogStreamLost`:
    the requester restarting, the connection dropping), the lines of ``open_lines(<the last
    line's resume position>)``, tried again with growing pauses for up to ``grace`` seconds
    without an answer: the output goes on where it was, no line repeated or lost.

    A server that gives no positions cannot be resumed: its stream's loss is raised."""
    loop = asyncio.get_running_loop()
    outage = Outage(job_id, grace, again=f"bacalhau job logs --follow {job_id}")
    position = ""
    positioned = True  # every line so far came with its position
    while True:
        lines = open_lines(position)
        try:
            async for line in lines:
                outage.back(loop.time())
                positioned = positioned and bool(line.resume)
                position = line.resume
                yield line
            outage.back(loop.time())
            return
        except LogStreamLost as err:
            if not positioned:
                raise
            await asyncio.sleep(outage.lost(err, loop.time(), math.inf))
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()
