"""S3 input partitioning (Bacalhau v1.7): the executions of a ``Count`` N job each take their
own share of the objects an ``s3`` input names.

``Source.Params.Partition`` picks how an object's key decides its partition:

- ``object``: the whole key;
- ``regex`` (``Pattern``): the pattern's non-empty capture groups, joined by the ASCII unit
  separator, or the whole match when it has none;
- ``substring`` (``StartIndex`` inclusive, ``EndIndex`` exclusive, in characters);
- ``date`` (``DateFormat``, a Go time layout such as ``2006-01-02``): a date at the start of
  the key, parsed and written back in that layout;
- ``none`` (or no ``Partition``): every execution takes every object.

The partition is ``FNV-1a-32(text) mod N``, as in Bacalhau, so the same objects go to the
same partition whichever implementation assigns them. Patterns, substrings and dates read the
key without the input's prefix (``Key`` without a trailing ``*``) and a leading ``/``; a key
they do not match goes to partition 0.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import param
from bacalhau.models._go_regex import GoRegexError, compile_go
from bacalhau.models._job import SpecConfig

__all__ = ["Partition", "PartitionSpec", "fnv1a_32", "partition_keys"]

_FIELD = "Source.Params.Partition"
_TYPES = ("none", "object", "regex", "substring", "date")
#: Joins a regex's capture groups (ASCII unit separator, as Bacalhau).
_GROUPS_JOINED_BY = "\x1f"


@dataclass(frozen=True, slots=True)
class Partition:
    """Which share of a partitioned input an execution takes: ``index`` of ``count``."""

    index: int = 0
    count: int = 1


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """``Source.Params.Partition`` of an ``s3`` input, checked."""

    type: str = "none"
    pattern: str = ""
    start: int = 0
    end: int = 0
    #: The Go layout, and the same as a ``strptime`` format.
    date_layout: str = ""
    date_format: str = ""

    @classmethod
    def from_spec(cls, spec: SpecConfig) -> PartitionSpec:
        """The spec's partitioning (``none`` when it has none); InvalidJobSpec naming the
        field at fault otherwise."""
        value = param(spec.params, "Partition")
        if value is None or value == {}:
            return cls()
        if not isinstance(value, dict):
            raise InvalidJobSpec("Partition must be an object", field=_FIELD)
        kind = _text(value, "Type").lower() or "none"
        if kind not in _TYPES:
            raise InvalidJobSpec(
                f"unsupported partition type {kind!r}",
                field=f"{_FIELD}.Type",
                hint="choose one of: " + ", ".join(_TYPES),
            )
        if kind == "regex":
            pattern = _text(value, "Pattern")
            if not pattern:
                raise InvalidJobSpec(
                    "regex partitioning needs a Pattern", field=f"{_FIELD}.Pattern"
                )
            try:
                compile_go(pattern)
            except GoRegexError as err:
                raise InvalidJobSpec(
                    f"Pattern is not a valid regular expression: {err}",
                    field=f"{_FIELD}.Pattern",
                    hint="Go's syntax (RE2): no backreferences or lookarounds",
                ) from None
            return cls(type=kind, pattern=pattern)
        if kind == "substring":
            start, end = _index(value, "StartIndex"), _index(value, "EndIndex")
            if start < 0:
                raise InvalidJobSpec(
                    "StartIndex must not be negative", field=f"{_FIELD}.StartIndex"
                )
            if end <= start:
                raise InvalidJobSpec(
                    "EndIndex must be greater than StartIndex", field=f"{_FIELD}.EndIndex"
                )
            return cls(type=kind, start=start, end=end)
        if kind == "date":
            layout = _text(value, "DateFormat")
            if not layout:
                raise InvalidJobSpec(
                    "date partitioning needs a DateFormat (a Go layout such as 2006-01-02)",
                    field=f"{_FIELD}.DateFormat",
                )
            return cls(type=kind, date_layout=layout, date_format=go_layout_to_strftime(layout))
        return cls(type=kind)


def _text(value: dict[str, Any], key: str) -> str:
    found = param(value, key)
    if found is None:
        return ""
    if not isinstance(found, str):
        raise InvalidJobSpec(f"{key} must be a string", field=f"{_FIELD}.{key}")
    return found


def _index(value: dict[str, Any], key: str) -> int:
    found = param(value, key)
    if found is None:
        return 0
    if isinstance(found, bool) or not isinstance(found, int):
        raise InvalidJobSpec(f"{key} must be a whole number", field=f"{_FIELD}.{key}")
    return found


def fnv1a_32(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text``'s UTF-8 bytes (Go's ``hash/fnv`` New32a)."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8", "surrogatepass"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def partition_keys(
    keys: Sequence[str], prefix: str, spec: PartitionSpec, partition: Partition
) -> list[str]:
    """The keys of ``keys`` (objects, no folders) in ``partition``; ``prefix`` is the
    input's ``Key``."""
    if partition.count <= 1 or spec.type == "none":
        return list(keys)
    trimmed = prefix.strip().removesuffix("*")
    pattern = compile_go(spec.pattern) if spec.type == "regex" else None
    chosen = []
    for key in keys:
        text = key if spec.type == "object" else key.removeprefix(trimmed).removeprefix("/")
        if _share(text, spec, pattern, partition.count) == partition.index:
            chosen.append(key)
    return chosen


def _share(text: str, spec: PartitionSpec, pattern: Any, count: int) -> int:
    if spec.type == "object":
        return fnv1a_32(text) % count
    if pattern is not None:
        match = pattern.search(text)
        if match is None or not match.group(0):
            return 0
        groups = [g for g in match.groups() if g]
        return fnv1a_32(_GROUPS_JOINED_BY.join(groups) if groups else match.group(0)) % count
    if spec.type == "substring":
        if len(text) < spec.end:
            return 0
        return fnv1a_32(text[spec.start : spec.end]) % count
    # date: the start of the key, as long as the layout, parsed and written back.
    try:
        when = datetime.datetime.strptime(text[: len(spec.date_layout)], spec.date_format)
    except ValueError:
        return 0
    return fnv1a_32(when.strftime(spec.date_format)) % count


#: Go layout elements, longest first where one is the start of another, and what
#: ``strptime``/``strftime`` call them.
_GO_ELEMENTS = {
    "2006": "%Y",
    "January": "%B",
    "Jan": "%b",
    "Monday": "%A",
    "Mon": "%a",
    "MST": "%Z",
    "Z07:00": "%z",
    "Z0700": "%z",
    "-07:00": "%z",
    "-0700": "%z",
    "15": "%H",
    "01": "%m",
    "02": "%d",
    "_2": "%d",
    "03": "%I",
    "04": "%M",
    "05": "%S",
    "06": "%y",
    "PM": "%p",
    "pm": "%p",
    "1": "%m",
    "2": "%d",
    "3": "%I",
    "4": "%M",
    "5": "%S",
}
_GO_ELEMENT = re.compile("|".join(re.escape(e) for e in _GO_ELEMENTS))


def go_layout_to_strftime(layout: str) -> str:
    """A Go time layout (``2006-01-02``) as a ``strftime`` format (``%Y-%m-%d``)."""
    out = []
    at = 0
    for match in _GO_ELEMENT.finditer(layout):
        out.append(layout[at : match.start()].replace("%", "%%"))
        out.append(_GO_ELEMENTS[match.group(0)])
        at = match.end()
    out.append(layout[at:].replace("%", "%%"))
    return "".join(out)
