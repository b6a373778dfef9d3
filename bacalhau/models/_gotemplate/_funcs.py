"""``text/template``'s built-in functions over the values a job file template holds.

Each function answers as Go's does, including its error text (``index out of range: 5``,
``incompatible types for comparison: string and int``); the executor wraps an error as
``error calling NAME: ...``. ``and``, ``or`` and ``call`` evaluate their arguments
themselves and live with the executor; their signatures are here with the others, because
argument counting and conversion follow the Go signature of each function.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bacalhau.models._gotemplate._fmt import sprint, sprintf, sprintln
from bacalhau.models._gotemplate._values import (
    Byte,
    GoValue,
    NoValue,
    basic_kind,
    from_go_bytes,
    go_bytes,
    is_true,
    type_name,
)

__all__ = ["FUNCTIONS", "SIGNATURES", "ArgType", "CallError", "Signature"]

#: How a parameter takes its argument: any value as ``reflect.Value``, an ``any``, a string.
ArgType = Literal["value", "any", "string"]


class CallError(Exception):
    """An error a built-in function returns; the message is Go's."""


@dataclass(frozen=True, slots=True)
class Signature:
    """A Go function signature: parameter types (for a variadic function the last one is
    the element type of ``...``)."""

    params: tuple[ArgType, ...]
    variadic: bool = False


_VALUE_VARIADIC = Signature(("value", "value"), variadic=True)
_ANY_VARIADIC = Signature(("any",), variadic=True)
_BINARY = Signature(("value", "value"))

SIGNATURES: dict[str, Signature] = {
    "and": _VALUE_VARIADIC,
    "or": _VALUE_VARIADIC,
    "call": _VALUE_VARIADIC,
    "index": _VALUE_VARIADIC,
    "slice": _VALUE_VARIADIC,
    "eq": _VALUE_VARIADIC,
    "html": _ANY_VARIADIC,
    "js": _ANY_VARIADIC,
    "urlquery": _ANY_VARIADIC,
    "print": _ANY_VARIADIC,
    "println": _ANY_VARIADIC,
    "printf": Signature(("string", "any"), variadic=True),
    "len": Signature(("value",)),
    "not": Signature(("value",)),
    "ne": _BINARY,
    "lt": _BINARY,
    "le": _BINARY,
    "gt": _BINARY,
    "ge": _BINARY,
}


def _index_arg(index: GoValue, cap: int) -> int:
    if isinstance(index, NoValue):
        raise CallError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise CallError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise CallError(f"index out of range: {index}")
    return index


def _index(args: Sequence[GoValue]) -> GoValue:
    item, indexes = args[0], args[1:]
    if isinstance(item, NoValue):
        raise CallError("index of untyped nil")
    for index in indexes:
        if isinstance(item, str):
            data = go_bytes(item)
            x = _index_arg(index, len(data))
            if x == len(data):
                raise CallError("reflect: string index out of range")
            item = Byte(data[x])
        elif isinstance(item, Mapping):
            if isinstance(index, NoValue):
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise CallError(f"value has type {type_name(index)}; should be string")
            # A missing key is the zero value, never an error: missingkey=error is only
            # about .key lookups, which is why Bacalhau's docs use index for optional ones.
            item = item.get(index, "")
        else:
            raise CallError(f"can't index item of type {type_name(item)}")
    return item


def _slice(args: Sequence[GoValue]) -> GoValue:
    item, indexes = args[0], args[1:]
    if isinstance(item, NoValue):
        raise CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise CallError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, str):
        raise CallError(f"can't slice item of type {type_name(item)}")
    if len(indexes) == 3:
        raise CallError("cannot 3-index slice a string")
    data = go_bytes(item)
    idx = [0, len(data)]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, len(data))
    if idx[0] > idx[1]:
        raise CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    return from_go_bytes(data[idx[0] : idx[1]])


def _len(args: Sequence[GoValue]) -> GoValue:
    item = args[0]
    if isinstance(item, str):
        return len(go_bytes(item))
    if isinstance(item, Mapping):
        return len(item)
    if isinstance(item, NoValue):
        # Go asks the zero reflect.Value for its type to word the error, and that panics.
        raise CallError("reflect: call of reflect.Value.Type on zero Value")
    raise CallError(f"len of type {type_name(item)}")


def _eq(args: Sequence[GoValue]) -> GoValue:
    arg1 = args[0]
    if len(args) == 1:
        raise CallError("missing argument for comparison")
    k1 = basic_kind(arg1)
    for arg in args[1:]:
        k2 = basic_kind(arg)
        truth = False
        if k1 != k2:
            if {k1, k2} == {"int", "uint"}:
                truth = arg1 == arg  # both Python ints: a negative int equals no uint
            elif not isinstance(arg1, NoValue) and not isinstance(arg, NoValue):
                raise CallError(
                    f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg)}"
                )
        elif k1 is not None:
            truth = arg1 == arg
        elif isinstance(arg1, NoValue) or isinstance(arg, NoValue):
            truth = isinstance(arg1, NoValue) and isinstance(arg, NoValue)
        else:
            # Two maps: never comparable in Go (only nil maps are, and the data is not nil).
            raise CallError(f"non-comparable type {sprintf('%s', [arg])}: {type_name(arg)}")
        if truth:
            return True
    return False


def _lt(arg1: GoValue, arg2: GoValue) -> bool:
    k1, k2 = basic_kind(arg1), basic_kind(arg2)
    if k1 is None or k2 is None:
        raise CallError("invalid type for comparison")
    if k1 != k2 and {k1, k2} != {"int", "uint"}:
        raise CallError(
            f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg2)}"
        )
    if k1 in ("bool", "complex"):
        raise CallError("invalid type for comparison")
    if isinstance(arg1, str) and isinstance(arg2, str):
        return go_bytes(arg1) < go_bytes(arg2)  # Go compares strings bytewise
    if isinstance(arg1, (int, float)) and isinstance(arg2, (int, float)):
        return arg1 < arg2  # int against uint compares the numbers, as Go does
    raise CallError("invalid type for comparison")


def _le(args: Sequence[GoValue]) -> GoValue:
    return _lt(args[0], args[1]) or bool(_eq(args))


def _html_escape(s: str) -> str:
    if not any(c in s for c in "'\"&<>\0"):
        return s
    return (
        s.replace("&", "&amp;")
        .replace("\0", "\ufffd")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


_JS_ASCII = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _js_escape(s: str) -> str:
    out = []
    for c in s:
        if c in _JS_ASCII:
            out.append(_JS_ASCII[c])
        elif c < " ":
            out.append(f"\\u00{ord(c):02X}")
        elif c < "\x80" or 0xDC80 <= ord(c) <= 0xDCFF or c.isprintable():
            # A byte that is not UTF-8 decodes as U+FFFD, which is printable: Go copies it.
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04X}")
    return "".join(out)


def _escaper_text(args: Sequence[GoValue]) -> str:
    # text/template's evalArgs: one string as it is, else Sprint, nil printing <no value>.
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if isinstance(a, NoValue) else a for a in args])


def _format(v: GoValue) -> str:
    # printf's format is a Go string parameter: the executor converted it already.
    assert isinstance(v, str)
    return v


def _urlquery(args: Sequence[GoValue]) -> GoValue:
    # url.QueryEscape: every byte but letters, digits and -_.~ escaped, space as '+'.
    return urllib.parse.quote_plus(go_bytes(_escaper_text(args)), safe="")


FUNCTIONS: dict[str, Callable[[Sequence[GoValue]], GoValue]] = {
    "index": _index,
    "slice": _slice,
    "len": _len,
    "not": lambda a: not is_true(a[0]),
    "eq": _eq,
    "ne": lambda a: not _eq(a),
    "lt": lambda a: _lt(a[0], a[1]),
    "le": _le,
    "gt": lambda a: not _le(a),
    "ge": lambda a: not _lt(a[0], a[1]),
    "html": lambda a: _html_escape(_escaper_text(a)),
    "js": lambda a: _js_escape(_escaper_text(a)),
    "urlquery": _urlquery,
    "print": sprint,
    "println": sprintln,
    "printf": lambda a: sprintf(_format(a[0]), a[1:]),
}
