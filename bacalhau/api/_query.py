"""Reading requests: query parameters (with the Python SDK's quirks), JSON bodies, paging
tokens and the client's wire version."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bacalhau.errors import BadQuery, InvalidRequest

#: The largest integer a query or body field takes: Go's int64, SQLite's INTEGER.
MAX_INT64 = 2**63 - 1
_MAX_DIGITS = len(str(MAX_INT64))
_TRUE = frozenset({"1", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "n", "no"})
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


class Query:
    """Typed access to a request's query string.

    Empty parameters count as absent (the Python SDK sends ``namespace=&next_token=``) and
    booleans accept Go's spellings as well as Python's ``True``/``False``.
    """

    __slots__ = ("_q",)

    def __init__(self, request: web.Request) -> None:
        self._q = request.query

    def text(self, name: str, default: str = "") -> str:
        value = self._q.get(name, "")
        return value if value != "" else default

    def joined(self, name: str) -> str:
        """A repeatable parameter, its values joined by ``,`` (label selectors)."""
        return ",".join(v for v in self._q.getall(name, []) if v.strip())

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._q.get(name, "").strip()
        if not value:
            return default
        low = value.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise BadQuery(
            f"{name} must be a boolean, got {_shown(value)}",
            field=name,
            hint=f"use {name}=true or {name}=false",
        )

    def count(self, name: str, default: int = 0) -> int:
        value = self._q.get(name, "").strip()
        if not value:
            return default
        hint = f"give {name} as a whole number from 0 to {MAX_INT64}"
        try:
            number = int(value) if len(value) <= _MAX_DIGITS else -1
        except ValueError:
            raise BadQuery(
                f"{name} must be a whole number, got {_shown(value)}", field=name, hint=hint
            ) from None
        if not 0 <= number <= MAX_INT64:
            raise BadQuery(
                f"{name} must be from 0 to {MAX_INT64}, got {_shown(value)}",
                field=name,
                hint=hint,
            )
        return number

    def seconds(self, name: str, default: float = 0.0) -> float:
        value = self._q.get(name, "").strip()
        if not value:
            return default
        hint = f"give {name} in seconds, such as {name}=1.5"
        try:
            number = float(value)
        except ValueError:
            raise BadQuery(
                f"{name} must be a number of seconds, got {_shown(value)}", field=name, hint=hint
            ) from None
        if not 0 <= number < math.inf:  # also refuses NaN
            raise BadQuery(
                f"{name} must be a finite number >= 0, got {_shown(value)}", field=name, hint=hint
            )
        return number


def _shown_value(value: Any) -> str:
    """A body value as an error message quotes it (an integer too long to print is named
    by its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        return _shown(value)
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _shown(value: str) -> str:
    """A query value as an error message quotes it: at most 100 characters of it."""
    return repr(value if len(value) <= 100 else value[:100] + "...")


@dataclass(slots=True)
class PageToken:
    """Bacalhau's paging token: base64url (no padding) of ``<sortBy>:<Y|N>:<limit>:<offset>``.

    For job history the offset is the last ``SeqNum`` the client has seen, so the token keeps
    working while new items are appended.
    """

    sort_by: str
    reverse: bool
    limit: int
    offset: int

    def encode(self) -> str:
        text = f"{self.sort_by}:{'Y' if self.reverse else 'N'}:{self.limit}:{self.offset}"
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, *, field: str = "next_token") -> PageToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            text = base64.urlsafe_b64decode(padded.encode()).decode()
            sort_by, rev, limit, offset = text.rsplit(":", 3)
            if rev not in ("Y", "N"):
                raise ValueError(rev)
            page = cls(sort_by, rev == "Y", int(limit), int(offset))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadQuery(
                f"invalid {field} {token[:100]!r}",
                field=field,
                hint="pass back the NextToken of a previous response unchanged",
            ) from None
        if page.limit < 0 or page.offset < 0:
            raise BadQuery(f"invalid {field} {token[:100]!r}", field=field)
        return page


@dataclass(slots=True)
class JobListToken:
    """The paging token of the job list: Bacalhau's shape, base64url (no padding) of
    ``<sortBy>:<Y|N>:<limit>:<offset>``, extended with the keyset cursor
    ``:<sort value>:<job ID>`` of the page's last job. Tokens without the cursor (from older
    versions) still page by offset.
    """

    sort_by: str
    reverse: bool
    limit: int
    offset: int
    after: tuple[int | str, str] | None = None

    def encode(self) -> str:
        text = f"{self.sort_by}:{'Y' if self.reverse else 'N'}:{self.limit}:{self.offset}"
        if self.after is not None:
            text += f":{self.after[0]}:{self.after[1]}"
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> JobListToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            parts = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
            if len(parts) not in (4, 6) or parts[1] not in ("Y", "N"):
                raise ValueError(token)
            sort_by, rev, limit, offset = parts[0], parts[1] == "Y", int(parts[2]), int(parts[3])
            after: tuple[int | str, str] | None = None
            if len(parts) == 6:
                value: int | str = parts[4] if sort_by == "id" else int(parts[4])
                if isinstance(value, int) and not -(2**63) <= value < 2**63:
                    raise ValueError(token)  # not a time a job can have
                after = (value, parts[5])
            if limit < 0 or offset < 0:
                raise ValueError(token)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadQuery(
                f"invalid next_token {token[:100]!r}",
                field="next_token",
                hint="pass back the NextToken of a previous response unchanged",
            ) from None
        return cls(sort_by, rev, limit, offset, after)


def client_version(request: web.Request) -> tuple[int, int, int] | None:
    """The Bacalhau release the client speaks, from ``X-Bacalhau-Git-Version`` (Go clients
    send it, and so do ours); None when it sends none (the Python SDK, curl)."""
    m = _VERSION_RE.match(request.headers.get("X-Bacalhau-Git-Version", "").strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def wants_v152_states(request: web.Request) -> bool:
    """True when the client numbers execution states the v1.5.2 way (0-11); the Python SDK
    sends no version and expects 0-9."""
    version = client_version(request)
    return version is not None and version >= (1, 5, 2)


def updates_by_name(request: web.Request, *, force: bool) -> bool:
    """Whether a job submitted under a taken name updates that job (Bacalhau v1.8+), or is a
    new job that takes the name (before v1.8 names were not unique, and clients of then,
    the official Python SDK among them, resubmit the same named job and expect a new one).
    A client saying v1.8 or later, or sending ``Force`` (a v1.8 field), updates."""
    version = client_version(request)
    return force or (version is not None and version >= (1, 8, 0))


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The request body as JSON; ``None`` when empty and not required. Malformed JSON is a 400
    with a hint, never a 500."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidRequest(
                "the request body is empty", hint="send a JSON object as the request body"
            )
        return None
    return parse_json(raw)


async def read_object(request: web.Request, *, example: str) -> dict[str, Any]:
    """The request body as a JSON object, ``{}`` when empty; any other JSON is a 400 (Go's
    decoder refuses to read an array or a number into the request's struct)."""
    body = await read_json(request, required=False)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got {type(body).__name__}",
            hint=f"send {example}, or no body",
        )
    return body


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; malformed or absurdly nested JSON is a 400 with a hint."""
    try:
        return json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError too
        if "integer string conversion" in str(exc):
            # Python's own limit on the digits of an integer: no field takes such a number.
            raise InvalidRequest(
                "a number in the request body has thousands of digits",
                hint="numbers in a request fit in 64 bits",
            ) from None
        raise InvalidRequest(
            f"malformed JSON in the request body: {exc}",
            hint="send a valid JSON object (check quotes, commas and brackets)",
        ) from None
    except RecursionError:
        raise InvalidRequest(
            "the JSON in the request body is nested too deeply",
            hint="a job spec is a handful of levels deep",
        ) from None


def key_ci(data: dict[str, Any], key: str) -> Any:
    """A value looked up by key, case-insensitively (Go decodes bodies that way)."""
    if key in data:
        return data[key]
    low = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def body_str(data: dict[str, Any], key: str) -> str:
    value = key_ci(data, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{key} must be a string, got {_shown_value(value)}",
            hint=f'give {key} as a JSON string ("...")',
            details={"Field": key},
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON's \ud800 escapes decode to lone surrogates, which nothing can store.
            raise InvalidRequest(
                f"{key} is not valid Unicode: it holds a lone UTF-16 surrogate",
                hint=f"send {key} as text whose \\u escapes pair up (or as plain UTF-8)",
                details={"Field": key},
            ) from None
    return value


def as_utf8(value: str) -> str:
    """A header's value as text that can be stored: the server reads header bytes that are
    not UTF-8 as lone surrogates; they become U+FFFD, as Bacalhau's JSON writes them."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def body_bool(data: dict[str, Any], key: str) -> bool:
    """A boolean of a request body (absent or null: False); anything else is a 400."""
    value = key_ci(data, key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(
            f"{key} must be true or false, got {_shown_value(value)}",
            hint=f"give {key} as a JSON boolean: true or false, without quotes",
            details={"Field": key},
        )
    return value


def body_uint(data: dict[str, Any], key: str, *, hint: str = "") -> int:
    """A non-negative integer of a request body (absent or null: 0); anything else is a 400
    with ``hint`` (Go's ``uint64`` refuses a fraction, a string and a negative number
    alike)."""
    value = key_ci(data, key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT64:
        raise InvalidRequest(
            f"{key} must be a whole number from 0 to {MAX_INT64}, got {_shown_value(value)}",
            hint=hint or None,
            details={"Field": key},
        )
    return value
