"""The node configuration's gossip keys (``-c gossip.probe_interval=0.3`` style), the old
heartbeat keys that still map onto gossip, and seeds from every spelling."""

from __future__ import annotations

import pytest

from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidConfiguration
from bacalhau.gossip import GossipSettings
from bacalhau.node._membership import gossip_settings, seed_addresses
from bacalhau.node._serve import scheduler_settings


def test_defaults_are_the_gossip_defaults() -> None:
    assert gossip_settings(NodeConfig()) == GossipSettings()


def test_dotted_and_flat_keys_set_gossip_settings() -> None:
    config = NodeConfig().with_overrides(
        {"gossip.probe_interval": "0.3", "Gossip.Probe-Timeout": "0.1", "gossip_fanout": 5}
    )
    settings = gossip_settings(config)
    assert (settings.probe_interval, settings.probe_timeout, settings.gossip_fanout) == (
        0.3,
        0.1,
        5,
    )


def test_old_heartbeat_keys_map_onto_gossip() -> None:
    config = NodeConfig().with_overrides({"heartbeat_interval": "0.2", "disconnect_timeout": "3"})
    settings = gossip_settings(config)
    assert settings.probe_interval == 0.2
    assert settings.probe_timeout < settings.probe_interval
    # A lone suspicion lasts at most the timeout; confirmed ones a third of it.
    low, high = settings.suspicion_bounds(2)
    assert (low, high) == pytest.approx((1.0, 3.0))
    # Bacalhau's spelling of the same key.
    bacalhau = NodeConfig().with_overrides({"Orchestrator.NodeManager.DisconnectTimeout": 3})
    assert gossip_settings(bacalhau).suspicion_bounds(2) == pytest.approx((1.0, 3.0))


def test_an_impossible_combination_is_refused() -> None:
    config = NodeConfig().with_overrides({"gossip.probe_timeout": "0.9"})
    with pytest.raises(InvalidConfiguration, match="probe_timeout"):
        gossip_settings(config)


def test_seeds_come_from_seeds_the_orchestrator_address_and_bacalhaus_key() -> None:
    config = NodeConfig().with_overrides(
        {"seeds": "10.0.0.1:4222,10.0.0.2:4222", "orchestrator_address": "10.0.0.1:4222"}
    )
    assert seed_addresses(config) == ["10.0.0.1:4222", "10.0.0.2:4222"]
    bacalhau = NodeConfig().with_overrides(
        {"Compute.Orchestrators": ["nats://10.0.0.3:4222", "10.0.0.4:4222"]}
    )
    assert seed_addresses(bacalhau) == ["10.0.0.3:4222", "10.0.0.4:4222"]


def test_a_requesters_disconnect_timeout_keeps_a_silent_nodes_work_that_long() -> None:
    """Other members may declare a node dead on their own (shorter) timing: the requester
    still fails its executions only once it has been silent the operator's timeout."""
    assert scheduler_settings(NodeConfig()).lost_execution_grace == 5.0
    config = NodeConfig().with_overrides({"Orchestrator.NodeManager.DisconnectTimeout": "30s"})
    assert scheduler_settings(config).lost_execution_grace == 30.0
    # A longer grace of its own is kept.
    longer = config.with_overrides({"lost_execution_grace": "45"})
    assert scheduler_settings(longer).lost_execution_grace == 45.0
