"""The functions ``bacalhau config list|set`` build on: describe a key, check a value as a
node would, list the settings in effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bacalhau.config import (
    KeyOrigin,
    KeyStatus,
    NodeConfig,
    describe_key,
    effective_settings,
    known_keys,
    load_config,
    validate_value,
)
from bacalhau.errors import InvalidConfiguration, InvalidRequest


def test_describe_key_gives_the_canonical_spelling_and_what_the_key_does() -> None:
    cpu = describe_key("compute.allocatedcapacity.cpu")
    assert (cpu.key, cpu.field, cpu.status, cpu.origin) == (
        "Compute.AllocatedCapacity.CPU",
        "allocated_cpu",
        KeyStatus.MAPPED,
        KeyOrigin.BACALHAU,
    )
    port = describe_key("API-PORT")
    assert (port.key, port.field, port.origin) == ("API.Port", "api_port", KeyOrigin.BACALHAU)
    ours = describe_key("Max-Attempts")
    assert (ours.key, ours.field, ours.origin) == ("max_attempts", "max_attempts", KeyOrigin.OURS)
    webui = describe_key("webui.enabled")
    assert webui.status is KeyStatus.IGNORED and webui.field is None
    assert webui.reason == "this node has no web UI"
    tls = describe_key("API.TLS.CertFile")
    assert tls.status is KeyStatus.REFUSED and "reverse proxy" in tls.hint
    with pytest.raises(InvalidRequest) as caught:
        describe_key("WebUI.Enable")
    assert caught.value.hint.startswith("did you mean 'WebUI.Enabled'?")


@pytest.mark.parametrize(
    ("key", "value", "written"),
    [
        ("WebUI.Enabled", "true", True),
        ("API.Port", "1234", 1234),
        ("Compute.Orchestrators", "a:4222,b:4222", ["a:4222", "b:4222"]),
        ("Labels", "zone=a,tier=b", {"zone": "a", "tier": "b"}),
        ("Compute.Heartbeat.Interval", " 15s ", "15s"),
        ("Compute.AllocatedCapacity.Memory", "2Gi", "2Gi"),
        ("JobDefaults.Batch.Task.Resources.CPU", "250m", "250m"),
        ("DataDir", "/srv/node", "/srv/node"),
        ("max_attempts", "5", 5),
        ("retry_delay", "1.5", 1.5),
        ("engines", "docker,wasm", ["docker", "wasm"]),
        (
            "Orchestrator.ApprovalHooks",
            '[{"Name": "a", "Type": "exec", "Command": "/bin/true"}]',
            [{"Name": "a", "Type": "exec", "Command": "/bin/true"}],
        ),
    ],
)
def test_validate_value_returns_what_to_write(key: str, value: str, written: Any) -> None:
    assert validate_value(key, value) == written
    # What it returns reads back as the same setting.
    assert NodeConfig().with_overrides({key: written}) == NodeConfig().with_overrides({key: value})


def test_validate_value_errors_are_the_nodes() -> None:
    with pytest.raises(InvalidRequest) as bad:
        validate_value("Compute.Heartbeat.Interval", "10days")
    assert bad.value.details["Field"] == "Compute.Heartbeat.Interval"
    with pytest.raises(InvalidConfiguration):
        validate_value("API.TLS.CertFile", "/etc/server.crt")
    # A client setting (a node refuses it only as it starts).
    assert validate_value("API.TLS.UseTLS", "true") is True
    with pytest.raises(InvalidRequest, match="must be anywhere or local"):
        validate_value("JobAdmissionControl.Locality", "nearby")
    with pytest.raises(InvalidRequest, match="unknown configuration key"):
        validate_value("Nope.Nothing", "1")


def test_effective_settings_list_ours_and_bacalhaus_as_a_file_holds_them(
    tmp_path: Path,
) -> None:
    cfg = NodeConfig(data_dir=tmp_path).with_overrides(
        {
            "Compute.AllocatedCapacity.Memory": "2Gi",
            "Orchestrator.NodeManager.DisconnectTimeout": "90s",
            "JobDefaults.Batch.Task.Timeouts.TotalTimeout": "1h",
            "labels": "zone=a",
            "WebUI.Enabled": "true",
        }
    )
    settings = effective_settings(cfg)
    assert settings["data_dir"] == str(tmp_path) and settings["DataDir"] == str(tmp_path)
    assert settings["labels"] == settings["Labels"] == {"zone": "a"}
    assert settings["disconnect_timeout"] == 90.0
    assert settings["Orchestrator.NodeManager.DisconnectTimeout"] == "1m30s"
    assert settings["Compute.AllocatedCapacity.Memory"] == "2Gi"
    assert settings["Compute.AllocatedCapacity.CPU"] == "70%"  # the share in effect
    assert settings["Compute.AllocatedCapacity.GPU"] == "100%"
    assert settings["JobDefaults.Batch.Task.Timeouts.TotalTimeout"] == "1h0m0s"
    assert settings["JobDefaults.Batch.Task.Resources.CPU"] == ""
    assert settings["JobAdmissionControl.RejectNetworkedJobs"] is True
    assert settings["Publishers.Types.S3.PreSignedURLExpiration"] == "1h0m0s"
    assert "WebUI.Enabled" not in settings and "ignored_settings" not in settings
    assert "job_defaults" not in settings


def test_effective_settings_written_to_a_file_load_back_to_the_same_configuration(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    cfg = load_config(
        {"data_dir": str(data_dir)},
        environ={},
        config_values={
            "Compute.AllocatedCapacity.CPU": "50%",
            "JobDefaults.Ops.Task.Publisher.Params": "Bucket=b",
            "Orchestrator.ApprovalHooks": '[{"Name": "a", "Type": "http", "URL": "http://x"}]',
            "NameProvider": "hostname",
        },
    )
    (data_dir / "config.yaml").write_text(yaml.safe_dump(effective_settings(cfg)))
    assert load_config({"data_dir": str(data_dir)}, environ={}) == cfg


def test_known_keys_are_ours_then_bacalhaus() -> None:
    keys = known_keys()
    assert keys[0].origin is KeyOrigin.OURS and keys[-1].origin is KeyOrigin.BACALHAU
    names = [k.key for k in keys]
    assert "api_port" in names and "API.Port" in names and "WebUI.Enabled" in names
    assert len(names) == len(set(names))
    for info in keys:
        assert describe_key(info.key) == info
