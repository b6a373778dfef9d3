"""A port a node listens on, set through a configuration key, is checked: the socket layer
would take 70000 as 4464 and quietly move the node to another port."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidRequest

PORTS = ["api_port", "grpc_port", "publisher_port"]
OPTIONAL_PORTS = ["api_grpc_port", "metrics_port"]  # -1: unset (off)


@pytest.mark.parametrize("name", PORTS + OPTIONAL_PORTS)
@pytest.mark.parametrize("value", ["70000", "65536", "-2", "-5"])
def test_a_port_out_of_range_is_refused_naming_the_key(name: str, value: str) -> None:
    key = name.replace("_", "-")
    with pytest.raises(InvalidRequest) as err:
        NodeConfig().with_overrides({key: value})
    assert err.value.details["Field"] == key
    assert f"{key} must be a port number from" in err.value.message
    assert "0 picks a free port" in (err.value.hint or "")


@pytest.mark.parametrize("name", PORTS)
def test_minus_one_is_refused_where_a_port_must_be_set(name: str) -> None:
    with pytest.raises(InvalidRequest):
        NodeConfig().with_overrides({name: "-1"})


@pytest.mark.parametrize("name", PORTS + OPTIONAL_PORTS)
@pytest.mark.parametrize("value", [0, 1, 65535])
def test_ports_in_range_are_taken(name: str, value: int) -> None:
    assert getattr(NodeConfig().with_overrides({name: str(value)}), name) == value


@pytest.mark.parametrize("name", OPTIONAL_PORTS)
def test_minus_one_leaves_an_optional_port_unset(name: str) -> None:
    assert getattr(NodeConfig().with_overrides({name: "-1"}), name) == -1


def test_serve_refuses_the_port_before_starting_anything(tmp_path: object) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bacalhau", "serve", "--orchestrator", "-c", "api_port=70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "api_port must be a port number from 0 to 65535, not 70000" in run.stderr
    assert "Traceback" not in run.stderr
