"""Kubernetes label selectors: parsing, errors naming the bad term, matching semantics."""

from __future__ import annotations

import pytest

from bacalhau.errors import BadQuery, InvalidJobSpec
from bacalhau.models import (
    LabelSelectorRequirement,
    format_selector,
    parse_selector,
    selector_matches,
)


def req(key: str, op: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=op, values=list(values))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("env=prod", [req("env", "=", "prod")]),
        ("env == prod", [req("env", "==", "prod")]),
        ("env!=prod", [req("env", "!=", "prod")]),
        ("zone in (a, b)", [req("zone", "in", "a", "b")]),
        ("zone notin (a,b,c)", [req("zone", "notin", "a", "b", "c")]),
        ("gpu", [req("gpu", "exists")]),
        ("!gpu", [req("gpu", "!")]),
        ("rank gt 1", [req("rank", "gt", "1")]),
        ("rank lt -3", [req("rank", "lt", "-3")]),
        ("rank > 2", [req("rank", "gt", "2")]),
        ("empty=", [req("empty", "=", "")]),
        (
            "example.com/tier=gold, zone in (a,b),!spot ,cpus gt 4",
            [
                req("example.com/tier", "=", "gold"),
                req("zone", "in", "a", "b"),
                req("spot", "!"),
                req("cpus", "gt", "4"),
            ],
        ),
        ("bacalhau_canary != true", [req("bacalhau_canary", "!=", "true")]),
    ],
)
def test_parse(text: str, expected: list[LabelSelectorRequirement]) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("zone in ()", "zone in ()"),
        ("zone in (a", "zone in (a"),
        ("zone in a", "zone in a"),
        ("env=prod, zone maybe x", "zone maybe x"),
        ("=prod", "=prod"),
        ("rank gt high", "rank gt high"),
        ("a=b c", "a=b c"),
        ("a,", "a,"),
        ("-bad=x", "-bad=x"),
        ("!", "!"),
    ],
)
def test_errors_name_the_term(text: str, term: str) -> None:
    with pytest.raises(BadQuery) as info:
        parse_selector(text)
    assert repr(term) in info.value.message
    assert info.value.field == "labels"
    assert info.value.hint


def test_error_type_and_field_for_job_constraints() -> None:
    with pytest.raises(InvalidJobSpec) as info:
        parse_selector("zone in (", field="Constraints", error=InvalidJobSpec)
    assert info.value.field == "Constraints"
    assert info.value.code == "InvalidJobSpec"


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("", {}, True),
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "dev"}, False),
        ("env=prod", {}, False),
        ("env!=prod", {}, True),  # k8s: absent keys satisfy !=
        ("env!=prod", {"env": "prod"}, False),
        ("zone notin (a,b)", {}, True),
        ("zone notin (a,b)", {"zone": "a"}, False),
        ("zone in (a,b)", {"zone": "b"}, True),
        ("zone in (a,b)", {}, False),
        ("gpu", {"gpu": ""}, True),
        ("gpu", {}, False),
        ("!gpu", {}, True),
        ("!gpu", {"gpu": "1"}, False),
        ("cpus gt 4", {"cpus": "8"}, True),
        ("cpus gt 4", {"cpus": "4"}, False),
        ("cpus gt 4", {"cpus": "many"}, False),
        ("cpus gt 4", {}, False),
        ("cpus lt 4", {"cpus": "2"}, True),
        ("env=prod,zone in (a)", {"env": "prod", "zone": "a"}, True),
        ("env=prod,zone in (a)", {"env": "prod", "zone": "b"}, False),
    ],
)
def test_matches(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(parse_selector(selector), labels) is matches


def test_format_round_trips() -> None:
    text = "env=prod,zone in (a,b),!spot,gpu,cpus gt 4,x != y"
    assert parse_selector(format_selector(parse_selector(text))) == parse_selector(text)
