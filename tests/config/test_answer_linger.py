"""The requester's answer linger (how long a compute node may hold its answer to an ask for
the execution's callbacks): read by name, refused outside what a node grants."""

from __future__ import annotations

import pytest

from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidRequest


def test_default_and_override() -> None:
    assert NodeConfig().ask_answer_linger == 0.05
    assert NodeConfig().with_overrides({"ask-answer-linger": "0"}).ask_answer_linger == 0.0
    assert NodeConfig().with_overrides({"ask_answer_linger": "0.1"}).ask_answer_linger == 0.1


@pytest.mark.parametrize("value", ["0.5", "-0.01", "soon"])
def test_a_linger_no_node_grants_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        NodeConfig().with_overrides({"ask_answer_linger": value})
    assert err.value.details["Field"] == "ask_answer_linger"
