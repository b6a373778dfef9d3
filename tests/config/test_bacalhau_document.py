"""A node's configuration in Bacalhau's nested shape, as ``/api/v1/agent/config`` answers
it: every Bacalhau key that sets one of our settings, at its place."""

from __future__ import annotations

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
