"""Errors on the public gRPC API: the node-to-node protocol's mapping
(``bacalhau.transport._errors``: the status code follows the error's class; the stable code,
the field at fault, the hint and every detail travel in trailing metadata, documented in
``proto/bacalhau/v1/api.proto``), plus the translation of failures that are not ours.

Two things differ from the other edges. Every text is capped (:data:`MAX_TEXT` bytes): the
status message and the metadata travel as HTTP/2 headers, and a client refuses headers of
more than 8 KiB (some of the time) to 16 KiB (always) with RESOURCE_EXHAUSTED, which would
hide the error the server meant to send (a 20,000-character job ID echoed in "job not
found"). And the words of the shared layers are put in this API's terms: fields are named
as in the ``.proto``, and hints name request fields instead of CLI flags.
"""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from google.rpc import error_details_pb2, status_pb2

from bacalhau.errors import BacalhauError, InternalError, JobSpecUnchanged, wire_details
from bacalhau.transport._errors import (
    DETAILS_KEY,
    FIELD_KEY,
    HINT_KEY,
    printable_ascii,
    status_for,
    trailing_metadata,
)

__all__ = [
    "ERROR_DOMAIN",
    "MAX_TEXT",
    "STATUS_DETAILS_KEY",
    "abort_with",
    "as_bacalhau_error",
    "capped",
    "error_metadata",
]

log = logging.getLogger(__name__)

#: The standard trailer of gRPC's richer error model (a serialized ``google.rpc.Status``).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: ``ErrorInfo.domain`` of this API's errors.
ERROR_DOMAIN = "bacalhau.org"

#: Longest status message, hint or details document sent, in UTF-8 bytes. With the message
#: percent-encoded (at worst three bytes per byte) and the hint and details base64-encoded,
#: an error's headers stay under 7 KiB, below every client's limit.
MAX_TEXT = 1000
#: Longest field name sent (field paths into a job can hold a map key of any length).
_MAX_FIELD = 200
#: Longest message and hint in the ``google.rpc.Status`` trailer, and most details in it.
_MAX_RICH_TEXT = 300
_MAX_RICH_DETAILS = 8
_ELLIPSIS = "…"

#: Fields the shared layers name by their REST (JSON) spelling, by their proto names.
_PROTO_FIELDS = {"idempotencyToken": "idempotency_token"}

#: Hints that name a CLI flag or REST parameter, as this API would say them.
_HINTS: dict[type[BacalhauError], str] = {
    JobSpecUnchanged: "set the request's force field to submit it anyway, a new version all "
    "the same (the SDK's force=True, the CLI's --force)",
}


def capped(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` if its UTF-8 encoding has at most ``limit`` bytes, else as much of it as fits
    with "…" at the end."""
    if len(text) * 4 <= limit:  # no character takes more than four bytes
        return text
    raw = text.encode("utf-8", "backslashreplace")
    if len(raw) <= limit:
        return text
    # Cut at a byte, then drop the partial character the cut may have left.
    kept = raw[: limit - len(_ELLIPSIS.encode())].decode("utf-8", "ignore")
    return kept + _ELLIPSIS


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


def _details_document(details: dict[str, str]) -> bytes:
    """``details`` as the JSON the metadata carries, its values shortened until it fits."""
    limit = MAX_TEXT
    while True:
        body = {key[:_MAX_FIELD]: capped(value, limit) for key, value in details.items()}
        raw = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
        if len(raw) <= MAX_TEXT or limit <= 16:
            return raw
        limit //= 2


def error_metadata(err: BacalhauError) -> tuple[tuple[str, str | bytes], ...]:
    """The trailing metadata of ``err`` on this API: the shared keys and layout
    (:func:`~bacalhau.transport._errors.trailing_metadata`), in this API's terms and capped."""
    details = wire_details(err)
    field = details.get("Field", "")
    if field:
        field = _PROTO_FIELDS.get(field, field)
        details["Field"] = field
    hint = capped(_HINTS.get(type(err), err.hint))
    replaced: dict[str, str | bytes] = {
        # Plain metadata values must be printable ASCII.
        FIELD_KEY: printable_ascii(field)[:_MAX_FIELD],
        HINT_KEY: hint.encode(),
        DETAILS_KEY: _details_document(details),
    }
    ours = tuple((key, replaced.get(key, value)) for key, value in trailing_metadata(err))
    return (*ours, (STATUS_DETAILS_KEY, _rich_status(err, field, hint, details)))


def _rich_status(err: BacalhauError, field: str, hint: str, details: dict[str, str]) -> bytes:
    """The same error as gRPC's richer error model says it (``google.rpc.Status`` in
    ``grpc-status-details-bin``), which generic tools and other languages' gRPC libraries
    decode: an ``ErrorInfo`` whose reason is the stable code (its metadata: the component,
    the hint and every detail), and a ``BadRequest`` naming the field at fault. Its texts are
    capped shorter than the other trailers' (:data:`_MAX_RICH_TEXT`): the two say the same
    and must together stay under a client's header limit."""
    info = error_details_pb2.ErrorInfo(reason=err.code, domain=ERROR_DOMAIN)
    info.metadata["component"] = capped(err.component, _MAX_FIELD)
    if hint:
        info.metadata["hint"] = capped(hint, _MAX_RICH_TEXT)
    for key, value in list(details.items())[:_MAX_RICH_DETAILS]:
        info.metadata[key[:_MAX_FIELD]] = capped(value, _MAX_FIELD)
    message = capped(err.message, _MAX_RICH_TEXT)
    status = status_pb2.Status(code=status_for(err).value[0], message=message)
    status.details.add().Pack(info)
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field[:_MAX_FIELD], description=message
        )
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    raw: bytes = status.SerializeToString()
    return raw


async def abort_with(context: Any, exc: BaseException, method: str) -> NoReturn:
    """End the current call with ``exc`` translated (raises grpc's abort exception)."""
    err = as_bacalhau_error(exc, method)
    await context.abort(status_for(err), capped(err.message), error_metadata(err))
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover
