"""S3 input partitioning as Bacalhau v1.7 defines it: FNV-1a-32 of a text taken from each key,
modulo the job's Count; every key lands in exactly one partition; a key a pattern does not
match goes to partition 0."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import SpecConfig
from bacalhau.models._s3_partition import (
    Partition,
    PartitionSpec,
    fnv1a_32,
    go_layout_to_strftime,
    partition_keys,
)
from bacalhau.storage._s3 import S3InputSpec


def spec(**partition: object) -> PartitionSpec:
    return PartitionSpec.from_spec(
        SpecConfig("s3", {"Bucket": "b", "Key": "data/", "Partition": partition})
    )


def owner(key: str, prefix: str, ps: PartitionSpec, count: int) -> int:
    [index] = [i for i in range(count) if partition_keys([key], prefix, ps, Partition(i, count))]
    return index


def test_fnv1a_32_matches_the_reference_vectors() -> None:
    # From the FNV reference (draft-eastlake-fnv): 32-bit FNV-1a.
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


def test_object_partitioning_hashes_the_whole_key() -> None:
    ps = spec(Type="object")
    key = "data/2024/01/a.csv"
    assert owner(key, "data/", ps, 4) == fnv1a_32(key) % 4


def test_regex_partitioning_joins_capture_groups_or_takes_the_match() -> None:
    grouped = spec(Type="regex", Pattern=r"(\d{4})/(\d{2})")
    assert owner("data/2024/01/a.csv", "data/", grouped, 5) == fnv1a_32("2024\x1f01") % 5
    whole = spec(Type="regex", Pattern=r"00\d\.txt")
    assert owner("data/001.txt", "data/", whole, 5) == fnv1a_32("001.txt") % 5
    # No match: partition 0.
    assert owner("data/readme.md", "data/", whole, 5) == 0


def test_substring_and_date_read_the_key_without_the_prefix() -> None:
    sub = spec(Type="substring", StartIndex=0, EndIndex=10)
    assert owner("logs/2024-01-15-server.log", "logs/*", sub, 7) == fnv1a_32("2024-01-15") % 7
    assert owner("logs/short", "logs/", sub, 7) == 0  # shorter than EndIndex
    date = spec(Type="date", DateFormat="2006-01-02")
    key = "archive/2024-01-15_backup.tar"
    assert owner(key, "archive/", date, 6) == fnv1a_32("2024-01-15") % 6
    assert owner("archive/backup.tar", "archive/", date, 6) == 0  # no date: partition 0


def test_go_layouts_become_strftime_formats() -> None:
    assert go_layout_to_strftime("2006-01-02") == "%Y-%m-%d"
    assert go_layout_to_strftime("20060102T150405") == "%Y%m%dT%H%M%S"
    assert go_layout_to_strftime("Jan 2 2006 100%") == "%b %d %Y %m00%%"


@given(
    keys=st.lists(st.text(min_size=1, max_size=30), max_size=40, unique=True),
    count=st.integers(min_value=1, max_value=6),
    kind=st.sampled_from(["object", "regex", "substring", "date", "none"]),
)
def test_every_key_lands_in_exactly_one_partition(keys: list[str], count: int, kind: str) -> None:
    params: dict[str, object] = {"Type": kind}
    if kind == "regex":
        params["Pattern"] = r"(\d+)"
    if kind == "substring":
        params.update(StartIndex=1, EndIndex=3)
    if kind == "date":
        params["DateFormat"] = "2006-01-02"
    ps = spec(**params)
    shares = [partition_keys(keys, "", ps, Partition(i, count)) for i in range(count)]
    if kind == "none" or count == 1:
        assert all(share == keys for share in shares)
        return
    assert sorted(k for share in shares for k in share) == sorted(keys)


@pytest.mark.parametrize(
    ("partition", "field"),
    [
        ({"Type": "bucket"}, "Partition.Type"),
        ({"Type": "regex"}, "Partition.Pattern"),
        ({"Type": "regex", "Pattern": "("}, "Partition.Pattern"),
        ({"Type": "substring", "StartIndex": -1, "EndIndex": 3}, "Partition.StartIndex"),
        ({"Type": "substring", "StartIndex": 3, "EndIndex": 3}, "Partition.EndIndex"),
        ({"Type": "substring", "StartIndex": "a", "EndIndex": 3}, "Partition.StartIndex"),
        ({"Type": "date"}, "Partition.DateFormat"),
    ],
)
def test_a_bad_partition_names_its_field(partition: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        spec(**partition)
    assert err.value.field == f"Source.Params.{field}"


def test_a_pattern_is_matched_in_linear_time_as_go_matches_it() -> None:
    # (a+)+$ backtracks exponentially in Python's re on a key it nearly matches; RE2 (the
    # engine Go's regexp follows) answers at once.
    ps = spec(Type="regex", Pattern=r"(a+)+$")
    keys = ["a" * 1000 + "b", "a" * 1000]
    started = time.monotonic()
    shares = [partition_keys(keys, "", ps, Partition(i, 3)) for i in range(3)]
    assert time.monotonic() - started < 1
    assert sorted(k for share in shares for k in share) == sorted(keys)


@pytest.mark.parametrize("pattern", [r"(?=a)", r"(a)\1", r"(?<=x)y"])
def test_what_go_cannot_match_is_refused_naming_the_pattern(pattern: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        spec(Type="regex", Pattern=pattern)
    assert err.value.field == "Source.Params.Partition.Pattern"
    assert "RE2" in err.value.hint


def test_an_s3_filter_is_a_go_pattern_too() -> None:
    source = SpecConfig("s3", {"Bucket": "b", "Key": "k*", "Filter": r"(?!x)"})
    with pytest.raises(InvalidJobSpec) as err:
        S3InputSpec.from_spec(source)
    assert err.value.field == "Source.Params.Filter"
