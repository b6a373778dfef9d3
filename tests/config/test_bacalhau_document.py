"""A node's configuration in Bacalhau's nested shape, as ``/api/v1/agent/config`` answers
it: every Bacalhau key that sets one of our settings, at its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.api._agent import redact
from bacalhau.config import NodeConfig, bacalhau_document


def test_the_document_nests_bacalhau_keys_with_their_values() -> None:
    config = NodeConfig().with_overrides(
        {
            "Orchestrator.Enabled": "true",
            "API.Port": "4321",
            "Labels": "zone=a",
            "Compute.Heartbeat.Interval": "15s",
        }
    )
    doc = bacalhau_document(config)
    assert doc["Orchestrator"]["Enabled"] is True
    assert doc["Compute"]["Enabled"] is False
    assert doc["API"] == {**doc["API"], "Host": "0.0.0.0", "Port": 4321}
    assert doc["Labels"] == {"zone": "a"}
    assert doc["Compute"]["Heartbeat"]["Interval"] == "15s"
    assert doc["NameProvider"] == "puuid"
    # Our own keys (field names) are not Bacalhau's: not in its document.
    assert "api_port" not in doc and "max_attempts" not in doc


def test_api_keys_and_passwords_are_redacted() -> None:
    users = [{"Alias": "a", "APIKey": "k" * 24, "Password": "p", "Username": "u"}]
    assert redact({"API": {"Auth": {"Users": users}}})["API"]["Auth"]["Users"] == [
        {"Alias": "a", "APIKey": "<redacted>", "Password": "<redacted>", "Username": "u"}
    ]


def test_every_role_shows_the_same_admission_keys() -> None:
    """A requester's ``agent config`` lists ``JobAdmissionControl`` as a compute node's does,
    our ``ProbeTimeout`` included (it once showed only Bacalhau's keys there)."""
    from bacalhau.node._api_settings import agent_config
    from bacalhau.orchestrator import ApprovalChain

    shown = {}
    for role in ("Orchestrator.Enabled", "Compute.Enabled"):
        config = NodeConfig().with_overrides(
            {role: "true", "JobAdmissionControl.ProbeTimeout": "3"}
        )
        shown[role] = agent_config(config, ApprovalChain([]))["JobAdmissionControl"]
    assert shown["Orchestrator.Enabled"] == shown["Compute.Enabled"]
    assert shown["Orchestrator.Enabled"]["ProbeTimeout"] == 3


def test_every_duration_key_is_a_go_duration_string() -> None:
    """Bacalhau's ``types.Duration`` decodes only from text (``"5m0s"``): a Go client
    reading ``/api/v1/agent/config`` fails on a number. Every key read as a duration is
    answered as one."""
    from bacalhau.config._bacalhau_keys import BACALHAU_KEYS, _presign_expiration
    from bacalhau.config._values import parse_duration

    doc = bacalhau_document(NodeConfig())
    durations = [
        e.info.key
        for e in BACALHAU_KEYS.values()
        if e.info.field and e.parse in (parse_duration, _presign_expiration)
    ]
    assert "Engines.Types.Docker.ManifestCache.TTL" in durations
    for key in durations:
        value: object = doc
        for part in key.split("."):
            assert isinstance(value, dict), key
            value = value[part]
        assert isinstance(value, str) and value[-1] in "smh", (key, value)


def test_the_data_dir_is_shown_whole_whatever_directory_the_node_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bacalhau.node._api_settings import agent_config
    from bacalhau.orchestrator import ApprovalChain

    monkeypatch.chdir(tmp_path)
    config = NodeConfig().with_overrides({"data_dir": "requester"})
    assert agent_config(config, ApprovalChain([]))["DataDir"] == str(tmp_path / "requester")
