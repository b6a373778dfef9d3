"""Following a job's output over the API's WebSocket (``/jobs/{id}/logs``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from bacalhau.client._auth import explain_refusal
from bacalhau.client._cluster_calls import quote_id
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

__all__ = ["LogLine", "stream_log_lines"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of an execution's output, with its newline if it had one."""

    stream: LogStream
    text: str


async def stream_log_lines(
    http: Transport,
    job_id: str,
    *,
    execution_id: str = "",
    follow: bool = False,
    tail: int = 0,
    namespace: str = "",
    version: int = 0,
) -> AsyncIterator[LogLine]:
    """Lines as the server sends them; ends when the server closes the stream.

    An error frame becomes the matching :class:`~bacalhau.errors.BacalhauError` (by its code:
    an unknown job raises :class:`~bacalhau.errors.JobNotFound`'s family, ``NotFound``); a
    stream that breaks off instead of closing normally (the requester died, the connection
    dropped) raises :class:`~bacalhau.errors.Unavailable`, so that a cut-off output is never
    taken for the whole of it. Leaving the loop early closes the socket, which stops the
    relay on the server.
    """
    url = http.base_url + f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/logs"
    params = _query(
        {
            "execution_id": execution_id,
            "follow": follow,
            "tail": tail or None,
            "namespace": namespace,
            "job_version": version or None,
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
        raise http.unreachable(exc) from None
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
            yield LogLine(kind, str(value.get("Line", "")))
        # The server closes with 1000 after the last line (or an error frame); anything else
        # (1006: the connection dropped without a close frame) cut the output short.
        if ws.close_code != aiohttp.WSCloseCode.OK:
            raise _broken_off(http, job_id, ws.close_code, None)
    finally:
        await ws.close()


def _broken_off(http: Transport, job_id: str, code: int | None, cause: object) -> Unavailable:
    """The error for a log stream that ended without the server closing it normally."""
    why = f"WebSocket closed with code {code}" if code else "the connection was lost"
    if isinstance(cause, BaseException) and str(cause):
        why += f": {cause}"
    return Unavailable(
        f"the log stream from the API at {http.base_url} ended unexpectedly ({why}); "
        "the output may be incomplete",
        hint=f"the requester may have stopped or restarted: once `bacalhau agent alive` "
        f"answers, follow the job again with `bacalhau job logs --follow {job_id}`",
    )
