"""Configuration values as operators write them: Go durations, sizes, CPU quantities,
percentages, booleans, numbers, lists and maps, each error naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from bacalhau.config._values import (
    capacity_parser,
    format_go_duration,
    parse_bool,
    parse_duration,
    parse_go_duration_ns,
    parse_int,
    parse_list,
    parse_map,
    parse_percentage,
    parse_size_text,
)
from bacalhau.errors import InvalidRequest

KEY = "Some.Key"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("10s", 10 * 10**9),
        ("1m", 60 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1h0m0s", 3600 * 10**9),
        ("1.5h", 5400 * 10**9),
        (".5s", 5 * 10**8),
        ("5.s", 5 * 10**9),
        ("300ms", 3 * 10**8),
        ("2us", 2000),
        ("2\u00b5s", 2000),  # micro sign
        ("2\u03bcs", 2000),  # Greek mu
        ("7ns", 7),
        ("1h1m1s1ms1us1ns", 3661 * 10**9 + 10**6 + 10**3 + 1),
        ("-1.5s", -15 * 10**8),
        ("0s", 0),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_durations_read_as_go_reads_them(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10days", "unknown unit 'days'"),
        ("1d", "unknown unit 'd'"),
        ("1 s", "unknown unit ' s'"),
        ("s", "not a duration"),
        (".s", "not a duration"),
        ("", "not a duration"),
        ("-", "not a duration"),
        ("1.5", "missing unit"),
        ("1h30", "missing unit"),
        ("2562047h47m16.854775808s", "out of range"),
    ],
)
def test_durations_go_refuses_are_refused_with_its_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_go_duration_ns(text)


def test_a_bad_duration_names_the_key_and_shows_the_forms() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_duration(KEY, "10days")
    err = caught.value
    assert err.message == (
        "invalid value '10days' for configuration key 'Some.Key': unknown unit 'days'"
    )
    assert err.details == {"Field": KEY}
    assert "10s" in err.hint and "days" in err.hint


def test_durations_in_seconds_and_their_limits() -> None:
    assert parse_duration(KEY, "1m30s") == 90.0
    assert parse_duration(KEY, 0) == 0.0
    # A bare number counts seconds, as our own keys do.
    assert parse_duration(KEY, 3) == 3.0
    assert parse_duration(KEY, "2.5") == 2.5
    for bad in ("-1s", -3, True, [1], {"a": 1}):
        with pytest.raises(InvalidRequest):
            parse_duration(KEY, bad)
    assert parse_duration(KEY, "-1s", allow_negative=True) == -1.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1.5, "1.5s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (3605, "1h0m5s"),
        (0.3, "300ms"),
        (0.0015, "1.5ms"),
        (0.000002, "2\u00b5s"),
        (-60, "-1m0s"),
    ],
)
def test_durations_print_as_go_prints_them(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text
    assert parse_go_duration_ns(text) == round(seconds * 1e9)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("t", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        (True, True),
        (1, True),
        ("false", False),
        ("F", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
        (False, False),
        (0, False),
    ],
)
def test_booleans(value: Any, expected: bool) -> None:
    assert parse_bool(KEY, value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", 2, 0.5, [True], None])
def test_not_booleans(value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_bool(KEY, value)
    assert "expected true or false" in caught.value.message
    assert caught.value.details["Field"] == KEY


def test_whole_numbers_and_their_bounds() -> None:
    assert parse_int(KEY, "42") == 42
    assert parse_int(KEY, 7.0) == 7
    assert parse_int(KEY, " -3 ") == -3
    for bad in (True, 2.5, "2.5", "1_000", "ten", None):
        with pytest.raises(InvalidRequest, match="expected a whole number"):
            parse_int(KEY, bad)
    with pytest.raises(InvalidRequest, match="must be at least 1"):
        parse_int(KEY, 0, minimum=1)
    with pytest.raises(InvalidRequest, match="must be at most 65535"):
        parse_int(KEY, 70000, maximum=65535)


def test_lists_and_maps() -> None:
    assert parse_list(KEY, "a, b,,c") == ("a", "b", "c")
    assert parse_list(KEY, ["a", 1, None]) == ("a", "1")
    assert parse_list(KEY, None) == ()
    assert parse_map(KEY, "zone=a,tier=b=c") == {"zone": "a", "tier": "b=c"}
    assert parse_map(KEY, {"zone": "a", "n": 1, "on": True}) == {
        "zone": "a",
        "n": "1",
        "on": "true",
    }
    for bad_list in ({"a": 1}, 3, [["nested"]]):
        with pytest.raises(InvalidRequest):
            parse_list(KEY, bad_list)
    for bad_map in ("a=1,b", "=1", ["a=1"], {"a": [1]}):
        with pytest.raises(InvalidRequest) as caught:
            parse_map(KEY, bad_map)
        assert caught.value.details["Field"] == KEY


@pytest.mark.parametrize(
    ("text", "size"),
    [("2Gi", "2Gi"), ("512Mb", "512Mb"), ("1GB", "1GB"), ("1.5 GiB", "1.5 GiB"), (1024, "1024")],
)
def test_sizes_are_checked_and_kept_as_written(text: Any, size: str) -> None:
    assert parse_size_text(KEY, text) == size


@pytest.mark.parametrize("text", ["2 parsecs", "Gi", "-1Gi", "1e3", "twelve"])
def test_not_sizes(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_size_text(KEY, text)
    assert "not a size" in caught.value.message and "2Gi" in caught.value.hint


def test_percentages() -> None:
    assert parse_percentage(KEY, "70%") == pytest.approx(0.7)
    assert parse_percentage(KEY, "0%") == 0.0
    assert parse_percentage(KEY, "100%") == 1.0
    assert parse_percentage(KEY, "12.5%") == pytest.approx(0.125)
    with pytest.raises(InvalidRequest, match="between 0% and 100%"):
        parse_percentage(KEY, "150%")
    for bad in ("70", "-5%", "%", "seventy%", "70 %"):
        with pytest.raises(InvalidRequest, match="not a percentage"):
            parse_percentage(KEY, bad)


@pytest.mark.parametrize(
    ("resource", "good", "bad"),
    [
        ("CPU", ["50%", "4", "3500m", "0.5"], ["4Gi", "many", "101%"]),
        ("Memory", ["80%", "2Gi", "512Mb", "1GB"], ["2 parsecs", "4m4"]),
        ("Disk", ["80%", "100Gi"], ["lots"]),
        ("GPU", ["100%", "1", "0"], ["1.5", "half", "-1"]),
    ],
)
def test_capacities_are_a_share_or_an_amount(
    resource: str, good: list[str], bad: list[str]
) -> None:
    parse = capacity_parser(resource)
    key = f"Compute.AllocatedCapacity.{resource}"
    for value in good:
        assert parse(key, value) == value
    for value in bad:
        with pytest.raises(InvalidRequest) as caught:
            parse(key, value)
        assert caught.value.details["Field"] == key
