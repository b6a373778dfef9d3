"""The one place where errors become gRPC statuses on the public gRPC API.

The status code follows the error's class; the stable code, the field at fault, the hint and
every detail travel in trailing metadata (documented in ``proto/bacalhau/v1/api.proto``), with
the keys the node-to-node protocol uses, plus ``bacalhau-error-field`` in plain text so a
client in any language can name the field without decoding JSON.
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
    RevisionConflict,
    Unavailable,
)

log = logging.getLogger(__name__)

CODE_KEY = "bacalhau-error-code"
FIELD_KEY = "bacalhau-error-field"
COMPONENT_KEY = "bacalhau-error-component"
HINT_KEY = "bacalhau-error-hint-bin"  # -bin: hints may be any UTF-8
DETAILS_KEY = "bacalhau-error-details-bin"

# Most specific first: the first class the error is an instance of wins.
_STATUS_BY_CLASS: tuple[tuple[type[BacalhauError], grpc.StatusCode], ...] = (
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (MultipleJobsFound, grpc.StatusCode.INVALID_ARGUMENT),
    (RevisionConflict, grpc.StatusCode.ABORTED),
    (InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (ConflictJobState, grpc.StatusCode.FAILED_PRECONDITION),
    (NotEnoughNodes, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (InternalError, grpc.StatusCode.INTERNAL),
)

#: Statuses for the HTTP statuses of errors with no class of their own above.
_STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_for(err: BacalhauError) -> grpc.StatusCode:
    """The gRPC status code of ``err``."""
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(err, cls):
            return status
    return _STATUS_BY_HTTP.get(err.http_status, grpc.StatusCode.INTERNAL)


def _ascii(text: str) -> str:
    # Plain metadata values must be printable ASCII.
    return text.encode("ascii", "backslashreplace").decode("ascii")


def trailing_metadata(err: BacalhauError) -> tuple[tuple[str, str | bytes], ...]:
    """The metadata carrying ``err``'s code, field, component, hint and details."""
    md: list[tuple[str, str | bytes]] = [
        (CODE_KEY, err.code),
        (COMPONENT_KEY, _ascii(err.component)),
    ]
    field = err.details.get("Field", "")
    if field:
        md.append((FIELD_KEY, _ascii(field)))
    if err.hint:
        md.append((HINT_KEY, err.hint.encode()))
    if err.details:
        md.append((DETAILS_KEY, json.dumps(err.details, sort_keys=True).encode()))
    return tuple(md)


def as_bacalhau_error(exc: BaseException, method: str) -> BacalhauError:
    """``exc`` if it is ours, else an InternalError (logged with its traceback)."""
    if isinstance(exc, BacalhauError):
        return exc
    log.error("gRPC API %s failed", method, exc_info=exc)
    return InternalError(
        f"{method} failed: internal server error",
        hint="this is a bug in the server; its log has the details",
        component="APIServer",
    )


async def abort_with(context: Any, exc: BaseException, method: str) -> NoReturn:
    """End the current call with ``exc`` translated (raises grpc's abort exception)."""
    err = as_bacalhau_error(exc, method)
    await context.abort(status_for(err), err.message, trailing_metadata(err))
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover
