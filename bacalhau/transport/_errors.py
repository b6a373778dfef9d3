"""BacalhauError <-> gRPC status, in one place (the public gRPC API uses it too).

Server side, a :class:`BacalhauError` raised by a handler (or by the trust checks) ends the
call with a matching gRPC status code; its stable code, hint, component and details travel in
trailing metadata, and the field at fault also in plain text (``bacalhau-error-field``) for
clients in any language. Client side, :func:`error_from_rpc` rebuilds the same error class
with :func:`bacalhau.errors.error_from_code`. A status without our metadata (the peer could
not be reached, a deadline passed, the TLS handshake failed) becomes :class:`Unavailable`, or
:class:`PermissionDenied` for gRPC's own authentication failures.
"""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

import grpc

from bacalhau.errors import (
    BacalhauError,
    ConflictJobState,
    InternalError,
    InvalidRequest,
    InvalidTransition,
    MultipleJobsFound,
    NotEnoughNodes,
    NotFound,
    PermissionDenied,
    RequestTooLarge,
    RevisionConflict,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_from_code,
    wire_details,
)

log = logging.getLogger(__name__)


async def written(context: Any, message: Any) -> bool:
    """Send one message of a server-streaming call; False when the caller has gone (the
    call ended under the write: a follower that left), which is no error of ours and must
    not be left to gRPC, which logs it as the servicer's failure, traceback and all."""
    try:
        await context.write(message)
    except (grpc.aio.InternalError, grpc.aio.UsageError):
        return False
    return True


CODE_KEY = "bacalhau-error-code"
FIELD_KEY = "bacalhau-error-field"
COMPONENT_KEY = "bacalhau-error-component"
HINT_KEY = "bacalhau-error-hint-bin"  # -bin: hints may be any UTF-8
DETAILS_KEY = "bacalhau-error-details-bin"

# Most specific first: the first class the error is an instance of wins.
_STATUS_BY_CLASS: tuple[tuple[type[BacalhauError], grpc.StatusCode], ...] = (
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    # gRPC's own status for a message over the receive limit.
    (RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (MultipleJobsFound, grpc.StatusCode.INVALID_ARGUMENT),
    (RevisionConflict, grpc.StatusCode.ABORTED),
    (InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (ConflictJobState, grpc.StatusCode.FAILED_PRECONDITION),
    (NotEnoughNodes, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TooManyRequests, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (InternalError, grpc.StatusCode.INTERNAL),
)


#: Statuses for the HTTP statuses of errors with no class of their own above.
_STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_for(err: BacalhauError) -> grpc.StatusCode:
    """The gRPC status code of ``err`` (the metadata carries its exact code)."""
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(err, cls):
            return status
    return _STATUS_BY_HTTP.get(err.http_status, grpc.StatusCode.INTERNAL)


def printable_ascii(text: str) -> str:
    """``text`` as a plain metadata value may carry it, printable ASCII: any other character
    (a control character of a JSON key at fault, a non-ASCII one) escaped as Python escapes
    it (``\\x01``, ``\\xe9``, ``\\U0001f600``); gRPC refuses the whole call otherwise."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text
    )


def trailing_metadata(err: BacalhauError) -> tuple[tuple[str, str | bytes], ...]:
    """The metadata carrying ``err``'s code, field, component, hint and details."""
    md: list[tuple[str, str | bytes]] = [
        (CODE_KEY, err.code),
        (COMPONENT_KEY, printable_ascii(err.component)),
    ]
    field = err.details.get("Field", "")
    if field:
        md.append((FIELD_KEY, printable_ascii(field)))
    if err.hint:
        md.append((HINT_KEY, err.hint.encode()))
    details = wire_details(err)
    if details:
        md.append((DETAILS_KEY, json.dumps(details, sort_keys=True).encode()))
    return tuple(md)


async def abort_with(context: Any, err: BacalhauError) -> NoReturn:
    """End the current server-side call with ``err`` (raises grpc's abort exception)."""
    await context.abort(status_for(err), err.message, trailing_metadata(err))
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover


def unexpected(exc: BaseException, method: str) -> InternalError:
    """The error a caller sees when a handler fails with something that is not ours."""
    log.exception("bprotocol handler %s failed", method, exc_info=exc)
    return InternalError(f"{method} failed on the remote node: {type(exc).__name__}")


def _metadata_dict(md: Any) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for key, value in md or ():
        out[key] = value
    return out


def error_of_code(
    code: str, message: str, *, hint: str | None = None, details: dict[str, str] | None = None
) -> BacalhauError:
    """The error a remote node refused something with, rebuilt from its stable code."""
    if code == InternalError.code:
        # The root class shares this code; the caller should see the specific class.
        return InternalError(message, hint=hint, details=details)
    return error_from_code(code, message, hint=hint, details=details)


def error_from_metadata(md: Any, message: str) -> BacalhauError | None:
    """The error whose code, hint, details and component the trailing metadata ``md`` of a
    failed call carries (see :func:`trailing_metadata`), or None when it carries none (the
    failure was not ours: an unreachable peer, a deadline, a proxy)."""
    found = _metadata_dict(md)
    code = found.get(CODE_KEY)
    if not isinstance(code, str) or not code:
        return None
    hint_raw = found.get(HINT_KEY)
    details_raw = found.get(DETAILS_KEY)
    hint = hint_raw.decode(errors="replace") if isinstance(hint_raw, bytes) else None
    details: dict[str, str] | None = None
    if isinstance(details_raw, bytes):
        try:
            loaded = json.loads(details_raw)
            if isinstance(loaded, dict):
                details = {str(k): str(v) for k, v in loaded.items()}
        except ValueError:
            details = None
    err = error_of_code(code, message, hint=hint, details=details)
    component = found.get(COMPONENT_KEY)
    if isinstance(component, str) and component:
        err.component = component
    return err


def error_from_rpc(exc: grpc.aio.AioRpcError, *, peer: str) -> BacalhauError:
    """Rebuild the error a remote node raised, or describe why it could not be reached.

    ``peer`` names the remote node in messages (node ID and address).
    """
    status = exc.code()
    message = exc.details() or status.name
    err = error_from_metadata(exc.trailing_metadata(), message)
    if err is not None:
        return err
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(
            f"{peer} is unreachable: {message}",
            hint=(
                "check that the node is running at that address, that its certificate was "
                "issued by this cluster's CA for that node ID, and that this node's is too"
            ),
            component="Transport",
        )
    if status in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return PermissionDenied(f"{peer} refused the call: {message}")
    if status == grpc.StatusCode.UNIMPLEMENTED:
        return InternalError(
            f"{peer} does not serve this call: {message}",
            hint=(
                "check that the node runs the role (compute or requester) this call is for, "
                "and the same version of bacalhau as this node: a node of another version "
                "may not know the call"
            ),
            component="Transport",
        )
    return InternalError(
        f"{peer} failed the call ({status.name}): {message}", component="Transport"
    )
