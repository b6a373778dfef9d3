"""The node's event loop: uvloop by default, the standard library's on request; any other
name is refused naming the key."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from bacalhau.cli._serve import _loop_factory, _run
from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidRequest


def test_default_and_override() -> None:
    assert NodeConfig().event_loop == "uvloop"
    assert NodeConfig().with_overrides({"event-loop": "AsyncIO"}).event_loop == "asyncio"


def test_an_unknown_loop_is_refused_naming_the_key() -> None:
    with pytest.raises(InvalidRequest) as err:
        NodeConfig().with_overrides({"event_loop": "trio"})
    assert err.value.details["Field"] == "event_loop"
    assert "uvloop, asyncio" in str(err.value)


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_a_node_runs_on_the_configured_loop() -> None:
    assert _loop_factory("uvloop") is uvloop.new_event_loop
    assert _loop_factory("asyncio") is None
    assert issubclass(_run(_loop_type(), "uvloop"), uvloop.Loop)
    assert not issubclass(_run(_loop_type(), "asyncio"), uvloop.Loop)
