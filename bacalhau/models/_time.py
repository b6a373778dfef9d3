"""Time encodings of the wire: int64 Unix nanoseconds and RFC 3339 with nanoseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ns() -> int:
    """Wall-clock time as Unix nanoseconds (Job/Execution CreateTime and ModifyTime)."""
    return time.time_ns()


#: Recently formatted whole seconds: every history item has two timestamps, a job's items
#: fall within a few seconds, and datetime + strftime cost ~10x the lookup. Cleared when
#: full (plain dict operations: safe across threads).
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 1024


def rfc3339_ns(ns: int) -> str:
    """Format Unix nanoseconds as ``2024-11-29T10:04:05.123456789Z``."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = _SECONDS.get(secs)
    if base is None:
        base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        _SECONDS[secs] = base
    return f"{base}.{frac:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp (any fraction length, any offset) to Unix nanoseconds."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    frac_ns = 0
    dot = s.find(".")
    if dot >= 0:
        # Find the fraction's end, then slice once (clients parse every history item's
        # times: building the digits one by one took a third of the call).
        rest = s[dot + 1 :]
        i, end = 0, len(rest)
        while i < end and rest[i].isdigit():
            i += 1
        frac_ns = int((rest[:i] + "000000000")[:9]) if i else 0
        s = s[:dot] + rest[i:]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + frac_ns
