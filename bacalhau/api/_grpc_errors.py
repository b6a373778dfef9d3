"""Errors on the public gRPC API: the node-to-node protocol's mapping
(``bacalhau.transport._errors``: the status code follows the error's class; the stable code,
the field at fault, the hint and every detail travel in trailing metadata, documented in
``proto/bacalhau/v1/api.proto``), plus the translation of failures that are not ours.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from bacalhau.errors import BacalhauError, InternalError
from bacalhau.transport._errors import status_for, trailing_metadata

__all__ = ["abort_with", "as_bacalhau_error"]

log = logging.getLogger(__name__)


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
