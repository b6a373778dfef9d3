"""What a node gives out for a listener bound to every interface: an address of this
machine that its certificate names (so that other hosts can reach it and check it), else
loopback with a warning; and what a requester certifies itself for on its first start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bacalhau.config import NodeConfig
from bacalhau.node._addresses import (
    LOOPBACK,
    given_out,
    interface_addresses,
    main_address,
    wildcard_host,
)
from bacalhau.node._bootstrap import own_hosts


def test_interface_addresses_are_this_machines_reachable_ones() -> None:
    addresses = interface_addresses()
    assert addresses, "this machine has a network interface besides loopback"
    assert not any(a.startswith("127.") or a == "::1" or a.startswith("fe80") for a in addresses)
    main = main_address()
    assert main is None or main in addresses


def test_a_certified_address_of_this_machine_is_given_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    addresses = interface_addresses()
    chosen = main_address() or addresses[0]
    with caplog.at_level(logging.WARNING):
        assert wildcard_host({"localhost", "127.0.0.1", chosen.upper()}) == chosen
        # Another of its addresses does when the main one is not certified.
        others = [a for a in addresses if a != chosen]
        if others:
            assert wildcard_host({others[-1]}) == others[-1]
    assert not caplog.records


def test_without_a_certified_address_loopback_is_given_out_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert wildcard_host({"localhost", "127.0.0.1"}) == LOOPBACK
    [record] = caplog.records
    assert "only nodes on this machine can reach it" in record.getMessage()
    assert "--advertise-host" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert wildcard_host(set(), warn=False) == LOOPBACK
    assert not caplog.records


def test_the_given_out_host_of_each_listener() -> None:
    assert given_out("0.0.0.0", "", "10.0.0.5") == "10.0.0.5"
    assert given_out("::", "", "10.0.0.5") == "10.0.0.5"
    assert given_out("10.1.2.3", "", "10.0.0.5") == "10.1.2.3"
    assert given_out("0.0.0.0", "node.example", "10.0.0.5") == "node.example"


def test_a_requester_certifies_itself_for_every_address_of_this_machine(tmp_path: Path) -> None:
    hosts = own_hosts(NodeConfig(data_dir=tmp_path))
    assert {"127.0.0.1", "localhost"} <= set(hosts)
    assert set(interface_addresses()) <= set(hosts)
