"""RFC 3339 timestamps to Unix nanoseconds: every fraction length and offset."""

from __future__ import annotations

import pytest

from bacalhau.models._time import parse_rfc3339_ns

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
