"""A job's wire dict owns its plugin params: changing it leaves the job as it was."""

from __future__ import annotations

from typing import Any

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import NetworkType, SpecConfig


def test_params_are_copied_all_the_way_down() -> None:
    params: dict[str, Any] = {
        "EntryModule": {"Source": {"Params": {"URL": "data:,x"}}},
        "Args": ["a", {"b": [1, 2.5, True, None]}],
        "Pair": ("t", ["inside a tuple"]),
    }
    spec = SpecConfig("wasm", params)
    out = spec.to_dict()
    assert out == {"Type": "wasm", "Params": params}
    out["Params"]["EntryModule"]["Source"]["Params"]["URL"] = "changed"
    out["Params"]["Args"][1]["b"].append("more")
    out["Params"]["Pair"][1].append("more")
    assert params["EntryModule"]["Source"]["Params"]["URL"] == "data:,x"
    assert params["Args"][1]["b"] == [1, 2.5, True, None]
    assert params["Pair"] == ("t", ["inside a tuple"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http", NetworkType.HTTP),
        (" Full ", NetworkType.FULL),
        ("NONE", NetworkType.NONE),
        ("", NetworkType.NONE),
        (None, NetworkType.NONE),
        (2, NetworkType.HTTP),
    ],
)
def test_network_types_by_any_spelling(value: object, expected: NetworkType) -> None:
    assert NetworkType.parse(value) is expected


@pytest.mark.parametrize("value", ["overlay", 3, True, 1.0])
def test_unknown_network_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        NetworkType.parse(value, field="Tasks[0].Network.Type")
    assert caught.value.field == "Tasks[0].Network.Type"
