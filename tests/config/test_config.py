"""Configuration precedence: defaults < config file < environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.config import NodeConfig, load_config
from bacalhau.errors import InvalidRequest


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("api_port: 2000\ngrpc_port: 3000\nengines: [wasm]\n")
    env = {"BACALHAU_NODE_GRPC_PORT": "3001", "BACALHAU_NODE_LABELS": "zone=a,tier=b"}
    cfg = load_config({"data_dir": str(tmp_path), "grpc_port": None, "compute": True}, environ=env)
    assert cfg.api_port == 2000  # file
    assert cfg.grpc_port == 3001  # env beats file; an unset flag does not override
    assert cfg.engines == ("wasm",)
    assert cfg.labels == {"zone": "a", "tier": "b"}
    assert cfg.compute is True and cfg.orchestrator is False
    flagged = load_config({"data_dir": str(tmp_path), "grpc_port": 4000}, environ=env)
    assert flagged.grpc_port == 4000


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("api_prot: 1\n")
    with pytest.raises(InvalidRequest) as info:
        load_config({"data_dir": str(tmp_path)}, environ={})
    assert info.value.details["Field"] == "api_prot"
    assert "api_port" in info.value.hint


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        load_config({"data_dir": str(tmp_path), "api_port": "many"}, environ={})
    assert info.value.details["Field"] == "api_port"


def test_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("api_port: [\n")
    with pytest.raises(InvalidRequest):
        load_config({"data_dir": str(tmp_path)}, environ={})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("manual_approval", "maybe"),
        ("Orchestrator.NodeManager.ManualApproval", "2"),
        ("labels", "a=b,c"),
    ],
)
def test_a_value_that_is_not_of_the_keys_type_is_refused_naming_the_key(
    key: str, value: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        NodeConfig().with_overrides({key: value})
    assert info.value.details["Field"] == key
    assert repr(key) in info.value.message


def test_bacalhau_key_names_map_to_ours_case_insensitively() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "ORCHESTRATOR.NodeManager.manualapproval": "true",
            "JobAdmissionControl.AcceptNetworkedJobs": "yes",
            "Publishers.Types.Local.Address": "127.0.0.2",
            "Publishers.Types.Local.Port": "7001",
            "Labels": "zone=a,tier=b",
            "DataDir": "/srv/node",
        }
    )
    assert cfg.manual_approval and cfg.accept_networked_jobs
    assert (cfg.publisher_host, cfg.publisher_port) == ("127.0.0.2", 7001)
    assert cfg.labels == {"zone": "a", "tier": "b"}
    assert cfg.data_dir == Path("/srv/node")
    assert NodeConfig().with_overrides({"manual_approval": "off"}).manual_approval is False


def test_the_port_range_takes_bacalhaus_keys_and_defaults(tmp_path: Path) -> None:
    assert (NodeConfig().port_range_start, NodeConfig().port_range_end) == (20000, 32000)
    (tmp_path / "config.yaml").write_text(
        "Compute:\n  Network:\n    PortRangeStart: 21000\n    PortRangeEnd: 21099\n"
    )
    cfg = load_config({"data_dir": str(tmp_path)}, environ={})
    assert (cfg.port_range_start, cfg.port_range_end) == (21000, 21099)
    flagged = cfg.with_overrides({"Compute.Network.PortRangeEnd": "21500"})
    assert flagged.port_range_end == 21500
