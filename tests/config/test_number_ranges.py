"""Numbers of ours set through a configuration key are range-checked, naming the key, before
anything starts: a port out of range was taken by the socket layer modulo 65536 (70000 is
4464, a node quietly moved), a capacity share out of range crashed the starting node, and a
negative size, count or duration meant nothing documented."""

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


@pytest.mark.parametrize(
    "name",
    [
        "job_retention",
        "retry_delay",
        "lost_node_wait",
        "input_max_retries",
        "docker_pids_limit",
        "docker_image_cache_ttl",
        "docker_image_cache_size",
        "wasm_memory_limit",
        "callback_linger",
        "default_queue_timeout",
    ],
)
def test_a_negative_size_count_or_duration_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        NodeConfig().with_overrides({name: "-1"})
    assert err.value.details["Field"] == name
    assert "must not be negative" in err.value.message
    # 0 keeps its meaning (no cap, at once, keep forever).
    assert getattr(NodeConfig().with_overrides({name: "0"}), name) == 0


@pytest.mark.parametrize(
    ("name", "value", "seconds"),
    [
        ("job_retention", "168h", 604800.0),
        ("lost_node_wait", "30s", 30.0),
        ("rejoin_grace", "1m", 60.0),
        ("retry_max_delay", "1m30s", 90.0),
        ("gossip_probe_interval", "200ms", 0.2),
        ("job_retention", "3600", 3600.0),
    ],
)
def test_every_duration_takes_a_go_duration_or_seconds(
    name: str, value: str, seconds: float
) -> None:
    assert getattr(NodeConfig().with_overrides({name: value}), name) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("name", "value", "size"),
    [
        ("docker_result_disk_limit", "5Mi", 5 * 2**20),
        ("docker_writable_layer_limit", "2Gi", 2 * 2**30),
        ("executor_output_limit", "1GB", 10**9),
        ("max_job_size", "1048576", 2**20),
        ("input_max_bytes", 4096, 4096),
    ],
)
def test_a_byte_count_takes_a_size_as_jobs_write_it(name: str, value: object, size: int) -> None:
    assert getattr(NodeConfig().with_overrides({name: value}), name) == size


def test_a_size_that_is_not_one_is_refused_naming_the_key() -> None:
    with pytest.raises(InvalidRequest, match="not a size") as err:
        NodeConfig().with_overrides({"docker_result_disk_limit": "5Xi"})
    assert err.value.details["Field"] == "docker_result_disk_limit"


def test_capabilities_to_drop_are_linux_names_as_docker_spells_them() -> None:
    config = NodeConfig().with_overrides({"docker_cap_drop": "cap_net_raw, SYS_ADMIN,ALL"})
    assert config.docker_cap_drop == ("NET_RAW", "SYS_ADMIN", "ALL")
    assert NodeConfig().docker_cap_drop == ("ALL",)
    with pytest.raises(InvalidRequest, match="unknown capabilities: NET_RWA") as err:
        NodeConfig().with_overrides({"docker_cap_drop": ["NET_RWA"]})
    assert err.value.details["Field"] == "docker_cap_drop"


@pytest.mark.parametrize("name", ["capacity_fraction", "min_reputation", "gossip_suspicion_mult"])
def test_a_ratio_takes_a_number_only(name: str) -> None:
    with pytest.raises(InvalidRequest, match="expected a number") as err:
        NodeConfig().with_overrides({name: "1h"})
    assert err.value.details["Field"] == name


@pytest.mark.parametrize("name", ["max_attempts", "max_attempts_per_node", "max_job_size"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_count_that_must_allow_one_is_refused_below_it(name: str, value: str) -> None:
    with pytest.raises(InvalidRequest, match="must be at least 1"):
        NodeConfig().with_overrides({name: value})


@pytest.mark.parametrize("value", ["0", "-1", "1.5"])
def test_capacity_fraction_is_a_share_of_the_host(value: str) -> None:
    with pytest.raises(InvalidRequest, match="above 0 and at most 1") as err:
        NodeConfig().with_overrides({"capacity_fraction": value})
    assert err.value.details["Field"] == "capacity_fraction"
    assert NodeConfig().with_overrides({"capacity_fraction": "1"}).capacity_fraction == 1.0


@pytest.mark.parametrize(
    ("role", "setting", "said"),
    [
        (
            "--orchestrator",
            "api_port=70000",
            "api_port must be a port number from 0 to 65535, not 70000",
        ),
        # It used to pass the configuration and crash the starting node with a ValueError.
        (
            "--compute",
            "capacity_fraction=-1",
            "capacity_fraction must be above 0 and at most 1, not -1.0",
        ),
    ],
)
def test_serve_refuses_the_setting_before_starting_anything(
    role: str, setting: str, said: str
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bacalhau", "serve", role, "-c", setting],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert said in run.stderr
    assert "Traceback" not in run.stderr
