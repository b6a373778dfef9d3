"""Configuration values as operators write them, checked and converted once.

Every parser takes the key as the operator spelled it and raises
:class:`~bacalhau.errors.InvalidRequest` naming that key (``details["Field"]``), with the
message ``invalid value <value> for configuration key <key>: <why>`` and a hint showing
the accepted forms, so an error is the same wherever the value came from (a config file,
the environment, ``-c Key=Value``, ``bacalhau config set``).

The forms are Bacalhau's (Go's): durations as ``time.ParseDuration`` reads them (``10s``,
``1m30s``, ``1.5h``; ``10days`` is refused as Go refuses it), booleans as
``strconv.ParseBool`` plus the words our own keys always took (yes/no, on/off), sizes and
CPU quantities as jobs write them (``2Gi``, ``512Mb``, ``1GB``; ``500m``), capacities as a
percentage of the host (``70%``) or an absolute amount.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from bacalhau._yaml import load_yaml
from bacalhau.errors import InvalidJobSpec, InvalidRequest
from bacalhau.models import parse_cpu, parse_size


def invalid(key: str, value: Any, why: str, hint: str = "") -> InvalidRequest:
    """The one error every parser raises: names the key, the value and why."""
    return InvalidRequest(
        f"invalid value {value!r} for configuration key {key!r}: {why}",
        hint=hint or None,
        details={"Field": key},
    )


# -- booleans, numbers, text ---------------------------------------------------------------

#: Go's ``strconv.ParseBool`` words, and the ones our own keys always accepted.
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "f", "false", "no", "off"})
_BOOL_HINT = "write true or false"


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise invalid(key, value, "expected true or false", _BOOL_HINT)


_INT = re.compile(r"[+-]?\d+")


def parse_int(
    key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """A whole number (``True`` is not one, nor is ``2.5``), within the bounds given."""
    if isinstance(value, bool):
        raise invalid(key, value, "expected a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise invalid(key, value, "expected a whole number")
    if minimum is not None and number < minimum:
        raise invalid(key, value, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise invalid(key, value, f"must be at most {maximum}")
    return number


def parse_port(key: str, value: Any) -> int:
    return parse_int(key, value, minimum=0, maximum=65535)


def parse_text(key: str, value: Any) -> str:
    """A scalar as text; a list or mapping where a single value belongs is an error."""
    if isinstance(value, (Mapping, list, tuple)):
        raise invalid(key, value, "expected a single value, not a list or a mapping")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``, in any case; returned as the choice is spelled."""
    text = parse_text(key, value).strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise invalid(key, value, "expected one of: " + ", ".join(choices))


# -- lists and maps ------------------------------------------------------------------------


def parse_list(key: str, value: Any) -> tuple[str, ...]:
    """A YAML list, or text with commas between the items (``a,b``); blanks are dropped."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, (Mapping, list, tuple)):
                raise invalid(key, value, "expected a list of single values")
            if item is not None and str(item).strip():
                items.append(parse_text(key, item).strip())
        return tuple(items)
    raise invalid(key, value, "expected a list", "write a YAML list, or items with commas: a,b")


def parse_map(key: str, value: Any) -> dict[str, str]:
    """A YAML mapping, or text ``k=v,k2=v2`` (the value may hold ``=``: ``a=b=c``)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, (Mapping, list, tuple)):
                raise invalid(key, value, f"the value of {k!r} must be a single value")
            out[str(k)] = parse_text(key, v)
        return out
    if isinstance(value, str):
        pairs = [kv.partition("=") for kv in value.split(",") if kv.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise invalid(key, value, "expected key=value[,key=value...]", "write zone=a,tier=b")
        return {k.strip(): v for k, _, v in pairs}
    raise invalid(key, value, "expected a mapping", "write a YAML mapping, or zone=a,tier=b")


def parse_structure(key: str, value: Any) -> Any:
    """A list or mapping that may arrive as JSON or YAML text (``-c Key=[...]``)."""
    if isinstance(value, str):
        try:
            return load_yaml(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise invalid(key, value, f"not JSON or YAML: {exc}") from None
    return value


# -- durations -----------------------------------------------------------------------------

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NS = 2**63 - 1
_DURATION_HINT = (
    "write a Go duration: numbers with units ns, us, ms, s, m or h, such as 10s, 1m30s, 1.5h "
    "or 24h (there is no unit for days)"
)
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_UNIT = re.compile(r"[^0-9.]*")


def parse_go_duration_ns(text: str) -> int:
    """Nanoseconds in ``text`` exactly as Go's ``time.ParseDuration`` reads it: an optional
    sign, then one or more number-unit pairs (``1h15m30.5s``), or a bare ``0``. Raises
    ``ValueError`` with Go's reason."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError("not a duration")
    total = 0
    while rest:
        number = _NUMBER.match(rest)
        assert number is not None  # the pattern matches the empty string
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:
            raise ValueError("not a duration")
        rest = rest[number.end() :]
        unit_match = _UNIT.match(rest)
        assert unit_match is not None
        unit = unit_match.group(0)
        if not unit:
            raise ValueError("missing unit")
        if unit not in _NS_PER_UNIT:
            raise ValueError(f"unknown unit {unit!r}")
        rest = rest[len(unit) :]
        scale = _NS_PER_UNIT[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_NS + (1 if negative else 0):
            raise ValueError("out of range (about 290 years at most)")
    return -total if negative else total


_SECONDS = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def parse_duration(key: str, value: Any, *, allow_negative: bool = False) -> float:
    """Seconds in a Go duration (``10s``, ``1m30s``, ``0``). A bare number counts seconds,
    as our own keys do and as these keys did here before they took units (Go refuses one;
    Bacalhau's YAML reads ``30`` as 30 nanoseconds, which nobody means)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise invalid(key, value, "expected a duration", _DURATION_HINT)
    text = str(value).strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        if seconds < 0 and not allow_negative:
            raise invalid(key, value, "must not be negative", _DURATION_HINT)
        return seconds
    try:
        ns = parse_go_duration_ns(text)
    except ValueError as exc:
        raise invalid(key, value, str(exc), _DURATION_HINT) from None
    if ns < 0 and not allow_negative:
        raise invalid(key, value, "must not be negative", _DURATION_HINT)
    return ns / 1e9


def go_duration_text(key: str, value: str) -> str:
    """``value``, a duration :func:`parse_duration` reads, as Go reads one: kept as written,
    but for a bare number of seconds, which gets its unit (``5`` is ``5s``)."""
    parse_duration(key, value)
    text = value.strip()
    return f"{text}s" if _SECONDS.fullmatch(text) else text


def format_go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``Duration.String()`` prints it (``1m0s``, ``1.5s``, ``500ms``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return sign + _decimal(ns, size) + unit
    hours, ns = divmod(ns, 3_600_000_000_000)
    minutes, ns = divmod(ns, 60_000_000_000)
    text = _decimal(ns, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, part = divmod(value, size)
    if not part:
        return str(whole)
    digits = str(part).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


# -- quantities ----------------------------------------------------------------------------

_SIZE_HINT = 'write bytes with a unit, such as "512Mb", "2Gi" or "1GB"'
_CPU_HINT = 'write cores ("2", "0.5") or millicores ("250m")'


def parse_size_text(key: str, value: Any) -> str:
    """A size as jobs write it (``512Mb``, ``2Gi``, ``1GB``), checked; returned as given
    (empty: not set)."""
    text = parse_text(key, value).strip()
    if not text:
        return ""
    try:
        parse_size(text, field=key)
    except InvalidJobSpec:
        raise invalid(key, value, "not a size", _SIZE_HINT) from None
    return text


def parse_bytes(key: str, value: Any) -> int:
    """A byte count: a whole number of bytes, or a size as jobs write it (``5Mi``, ``1GB``)."""
    if isinstance(value, str) and not _INT.fullmatch(value.strip()):
        text = value.strip()
        if text.startswith("-"):
            return parse_int(key, value)  # (the range check says what is wrong)
        try:
            return parse_size(text, field=key)
        except InvalidJobSpec:
            raise invalid(key, value, "not a size", _SIZE_HINT) from None
    return parse_int(key, value)


def parse_cpu_text(key: str, value: Any) -> str:
    """A CPU quantity as jobs write it (``250m``, ``0.5``, ``2``), checked; returned as
    given (empty: not set)."""
    text = parse_text(key, value).strip()
    if not text:
        return ""
    try:
        parse_cpu(text, field=key)
    except InvalidJobSpec:
        raise invalid(key, value, "not a CPU quantity", _CPU_HINT) from None
    return text


def parse_gpu_text(key: str, value: Any) -> str:
    """A GPU count (empty: not set)."""
    if isinstance(value, str) and not value.strip():
        return ""
    return str(parse_int(key, value, minimum=0))


_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)%")


def parse_percentage(key: str, value: Any) -> float:
    """``70%`` -> 0.7; Bacalhau allows 0% to 100%."""
    text = parse_text(key, value).strip()
    match = _PERCENT.fullmatch(text)
    if match is None:
        raise invalid(key, value, "not a percentage", "write a percentage such as 70%")
    share = float(match.group(1)) / 100
    if share > 1:
        raise invalid(key, value, "a percentage must be between 0% and 100%")
    return share


def capacity_parser(resource: str) -> Any:
    """The parser of ``Compute.AllocatedCapacity.<resource>``: a percentage of the host
    (``70%``) or an absolute amount (CPU ``4``/``500m``, Memory/Disk ``2Gi``, GPU ``1``),
    returned as the text given (the node measures its host when it starts)."""
    absolute = {"cpu": parse_cpu_text, "gpu": parse_gpu_text}.get(resource.lower(), parse_size_text)

    example = {"cpu": "4 or 500m", "gpu": "1"}.get(resource.lower(), "2Gi or 512Mb")

    def parse(key: str, value: Any) -> str:
        text = parse_text(key, value).strip()
        if not text:
            return ""  # not set: the node's capacity_fraction
        if text.endswith("%"):
            none = parse_percentage(key, text) == 0
        else:
            try:
                text = absolute(key, text)
            except InvalidRequest:
                raise invalid(
                    key,
                    value,
                    "expected a percentage of the host or an absolute amount",
                    f"write 70% or, for {resource}, {example}",
                ) from None
            none = _amount(resource, text) == 0
        if none and resource.lower() in ("cpu", "memory"):
            # A node with none of it could run nothing: every job it alone matches would
            # wait for room that never comes.
            raise invalid(
                key,
                value,
                f"a compute node needs some {resource}: with none it could run no job",
                f"give it a share of the host (70%) or an amount ({example}), or start the "
                "node without the compute role",
            )
        return text

    return parse


def _amount(resource: str, text: str) -> float:
    """An absolute capacity amount's value (cores, bytes or GPUs)."""
    if resource.lower() == "cpu":
        return parse_cpu(text, field=resource)
    if resource.lower() == "gpu":
        return float(text)
    return parse_size(text, field=resource)
