"""The gRPC client's errors: a failed call as the :mod:`bacalhau.errors` class the server
raised, rebuilt from the stable code, field, hint and details in the call's trailing metadata
(the inverse of ``bacalhau.api._grpc_errors``); a status without them (the node is
unreachable, a deadline passed, a proxy answered) maps by its gRPC status code."""

from __future__ import annotations

import grpc

from bacalhau.errors import (
    BacalhauError,
    ConflictJobState,
    InternalError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RevisionConflict,
    Unauthorized,
    Unavailable,
)
from bacalhau.transport._errors import error_from_metadata

__all__ = ["CONNECT_HINT", "error_from_status", "lost_call"]

CONNECT_HINT = (
    "start a node with `bacalhau serve` or `bacalhau devstack`, or point the client at its "
    "gRPC API (BACALHAU_API_HOST/BACALHAU_API_GRPC_PORT; the devstack prints the address)"
)


def error_from_status(exc: grpc.aio.AioRpcError, *, target: str) -> BacalhauError:
    """The :mod:`bacalhau.errors` error a failed call stands for.

    With the server's metadata, the class of its stable code (an unknown job comes back in
    the :class:`~bacalhau.errors.NotFound` family) with its hint, details (the field at
    fault among them) and component, read as the node-to-node protocol reads them; without,
    the class of the status code.
    """
    status = exc.code()
    message = exc.details() or status.name
    err = error_from_metadata(exc.trailing_metadata(), message)
    return err if err is not None else _error_without_metadata(status, message, target)


def lost_call(exc: grpc.aio.AioRpcError) -> bool:
    """Whether the call failed for want of the server (it went away, the connection
    dropped), not with an answer of its own: a server's errors carry its metadata."""
    return (
        exc.code() == grpc.StatusCode.UNAVAILABLE
        and error_from_metadata(exc.trailing_metadata(), "") is None
    )


def _error_without_metadata(status: grpc.StatusCode, message: str, target: str) -> BacalhauError:
    codes = grpc.StatusCode
    if status == codes.UNAVAILABLE:
        return Unavailable(
            f"cannot reach the Bacalhau gRPC API at {target}: {message}", hint=CONNECT_HINT
        )
    if status == codes.DEADLINE_EXCEEDED:
        return Unavailable(
            f"the Bacalhau gRPC API at {target} did not answer in time: {message}",
            hint="the node may be overloaded; try again",
        )
    if status == codes.UNAUTHENTICATED:
        return Unauthorized(f"{target} refused the call: {message}")
    if status == codes.PERMISSION_DENIED:
        return PermissionDenied(f"{target} refused the call: {message}")
    if status == codes.NOT_FOUND:
        return NotFound(message)
    if status in (codes.INVALID_ARGUMENT, codes.OUT_OF_RANGE):
        return InvalidRequest(message)
    if status == codes.FAILED_PRECONDITION:
        return ConflictJobState(message)
    if status == codes.ABORTED:
        return RevisionConflict(message)
    if status == codes.UNIMPLEMENTED:
        return InternalError(
            f"{target} does not serve this call: {message}",
            hint="check that the address is a requester's gRPC API (api_grpc_port), of a "
            "release that has this call",
        )
    return InternalError(f"{target} failed the call ({status.name}): {message}")
