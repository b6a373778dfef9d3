"""RFC 3339 timestamps to Unix nanoseconds: every fraction length and offset."""

from __future__ import annotations

import pytest

from bacalhau.models._time import parse_rfc3339_ns, rfc3339_ns

SECOND = 1_794_990_400  # 2026-11-18T08:26:40Z
BASE = "2026-11-18T08:26:40"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{BASE}Z", SECOND * 10**9),
        (f"{BASE}z", SECOND * 10**9),
        (f"{BASE}.5Z", SECOND * 10**9 + 500_000_000),
        (f"{BASE}.123456789Z", SECOND * 10**9 + 123_456_789),
        (f"{BASE}.1234567891234Z", SECOND * 10**9 + 123_456_789),  # beyond ns: cut
        (f"{BASE}.Z", SECOND * 10**9),
        (f"{BASE}.25+02:00", (SECOND - 7200) * 10**9 + 250_000_000),
        (f"  {BASE}.000000001-01:30 ", (SECOND + 5400) * 10**9 + 1),
        (BASE, SECOND * 10**9),  # no offset: UTC
    ],
)
def test_parse(text: str, expected: int) -> None:
    assert parse_rfc3339_ns(text) == expected


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns("2026-11-18T08:26:40.12x")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (SECOND * 10**9, f"{BASE}.000000000Z"),
        (SECOND * 10**9 + 1, f"{BASE}.000000001Z"),
        (SECOND * 10**9 + 999_999_999, f"{BASE}.999999999Z"),
        ((SECOND + 1) * 10**9, "2026-11-18T08:26:41.000000000Z"),
        (0, "1970-01-01T00:00:00.000000000Z"),
    ],
)
def test_format(ns: int, text: str) -> None:
    # Twice: the second answer comes from the memo of formatted seconds.
    assert rfc3339_ns(ns) == text
    assert rfc3339_ns(ns) == text
    assert parse_rfc3339_ns(text) == ns


def test_format_after_the_memo_is_cleared() -> None:
    """More distinct seconds than the memo keeps: each is still formatted right."""
    for i in range(3000):
        ns = (SECOND + i * 3601) * 10**9 + i
        assert parse_rfc3339_ns(rfc3339_ns(ns)) == ns
