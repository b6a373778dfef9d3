"""What a node gives out for a listener bound to every interface: an address of this
machine that its certificate names (so that other hosts can reach it and check it), else
loopback with a warning; and what a requester certifies itself for on its first start."""

from __future__ import annotations

from pathlib import Path

from bacalhau.config import NodeConfig
from bacalhau.node._addresses import (
    given_out,
    interface_addresses,
    main_address,
    wildcard_host,
)
from bacalhau.node._bootstrap import own_hosts
from bacalhau.node._membership import _seed_hint


def test_interface_addresses_are_this_machines_reachable_ones() -> None:
    addresses = interface_addresses()
    assert addresses, "this machine has a network interface besides loopback"
    assert not any(a.startswith("127.") or a == "::1" or a.startswith("fe80") for a in addresses)
    main = main_address()
    assert main is None or main in addresses


def test_a_certified_address_of_this_machine_is_given_out_else_its_main_one() -> None:
    addresses = interface_addresses()
    main = main_address() or addresses[0]
    assert wildcard_host({"localhost", "127.0.0.1", main.upper()}) == main
    # Another of its addresses when the main one is not certified.
    others = [a for a in addresses if a != main]
    if others:
        assert wildcard_host({others[-1]}) == others[-1]
    # A certificate naming none of them (a host name, loopback): members dial each other by
    # node ID, so the main address still serves; loopback never does for other hosts.
    assert wildcard_host({"localhost", "127.0.0.1", "node.example"}) == main
    assert wildcard_host(set()) == main


def test_the_given_out_host_of_each_listener() -> None:
    assert given_out("0.0.0.0", "", "10.0.0.5") == "10.0.0.5"
    assert given_out("::", "", "10.0.0.5") == "10.0.0.5"
    assert given_out("10.1.2.3", "", "10.0.0.5") == "10.1.2.3"
    assert given_out("0.0.0.0", "node.example", "10.0.0.5") == "node.example"


def test_a_requester_certifies_itself_for_every_address_of_this_machine(tmp_path: Path) -> None:
    hosts = own_hosts(NodeConfig(data_dir=tmp_path))
    assert {"127.0.0.1", "localhost"} <= set(hosts)
    assert set(interface_addresses()) <= set(hosts)


def test_a_seed_certified_for_another_name_is_told_how_to_fix_it() -> None:
    err = OSError(
        "the node at req.cluster:4222 is unreachable: Custom verification check failed with "
        "error: UNAUTHENTICATED: Hostname Verification Check failed."
    )
    hint = _seed_hint("req.cluster:4222", err)
    assert "not for req.cluster" in hint and "bacalhau ca issue --host req.cluster" in hint
    assert _seed_hint("10.0.0.1:4222", OSError("Deadline Exceeded")) == ""
