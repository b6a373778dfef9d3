"""``check_document``: what no part of a submitted document may hold, and the path it names
for the value at fault (built only when there is a fault)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import check_document
from bacalhau.models._validate import MAX_DOCUMENT_DEPTH


def _job(params: Any) -> dict[str, Any]:
    return {"Tasks": [{"Name": "main", "Engine": {"Type": "wasm", "Params": params}}]}


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (_job({"A": ["ok", "bad\ud800"]}), "Tasks[0].Engine.Params.A[1]", "not valid Unicode"),
        (_job({"k\udc00": 1}), "Tasks[0].Engine.Params.k\\udc00", "key is not valid Unicode"),
        (_job({"N": 2**64}), "Tasks[0].Engine.Params.N", "out of range"),
        (_job({"N": [1, -(2**64)]}), "Tasks[0].Engine.Params.N[1]", "out of range"),
        (_job({"F": float("nan")}), "Tasks[0].Engine.Params.F", "finite number"),
        (_job({"F": float("-inf")}), "Tasks[0].Engine.Params.F", "finite number"),
        (_job({7: {"x": float("inf")}}), "Tasks[0].Engine.Params.7.x", "finite number"),
        (_job(OrderedDict(m=("a", "\ud800"))), "Tasks[0].Engine.Params.m[1]", "Unicode"),
    ],
)
def test_the_fault_is_named_by_its_path(document: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        check_document(document)
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_path_given_prefixes_the_fields() -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        check_document({"a": [float("nan")]}, path="Meta")
    assert caught.value.field == "Meta.a[0]"


def test_nesting_past_the_limit_names_the_deepest_allowed_place() -> None:
    deep: Any = "x"
    for _ in range(MAX_DOCUMENT_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidJobSpec) as caught:
        check_document({"P": deep})
    assert caught.value.field == "P" + "[0]" * (MAX_DOCUMENT_DEPTH - 1)
    assert "nested more than" in caught.value.message


def test_limits_themselves_pass() -> None:
    deep: Any = "x"
    for _ in range(MAX_DOCUMENT_DEPTH - 1):  # the document's own object is one level
        deep = [deep]
    check_document(
        {
            "deep": deep,
            "ints": [2**64 - 1, -(2**64) + 1, True, None, 1.5],
            "text": "caf\u00e9 \U0001f600",
            "k\u00e9y": ("tuple", "values"),
        }
    )
