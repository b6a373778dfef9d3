"""Settings of verified results: deterministic images, the reputation threshold and the
test-only faulty node, each checked by name."""

from __future__ import annotations

import pytest

from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidRequest


def test_defaults_are_off() -> None:
    cfg = NodeConfig()
    assert (cfg.deterministic_images, cfg.min_reputation, cfg.faulty_results) == ((), 0.0, "")


def test_values_are_read_from_keys() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "deterministic-images": "local/busybox:1.37,local/tools:*",
            "min_reputation": "0.4",
            "faulty_results": "corrupt",
        }
    )
    assert cfg.deterministic_images == ("local/busybox:1.37", "local/tools:*")
    assert cfg.min_reputation == 0.4
    assert cfg.faulty_results == "corrupt"


@pytest.mark.parametrize(("key", "value"), [("faulty_results", "flaky"), ("min_reputation", "1.5")])
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        NodeConfig().with_overrides({key: value})
    assert err.value.details["Field"] == key
