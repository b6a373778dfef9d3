"""The addresses a node is known by: what it gives out for a listener bound to every
interface, and what a requester certifies itself for on its first start.

A node binding every interface (``0.0.0.0``, the default) without ``--advertise-host`` used
to give out ``127.0.0.1``: other hosts then probed, and dialled, their own loopback, and a
healthy node looked dead to them. It now gives out this machine's main address (the source
address of its default route), or another address of its interfaces, when its certificate
names it, so that every member can reach it there and check it (a node is always dialled by
an address its certificate must name). When its certificate names no such address, it gives
out ``127.0.0.1`` as before and says, once, that only this machine can reach it and how to
fix that.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Collection

import ifaddr

from bacalhau.config import NodeConfig
from bacalhau.identity import NodeFiles, certified_hosts

log = logging.getLogger(__name__)

#: Addresses that name no particular host.
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})
LOOPBACK = "127.0.0.1"
#: Where the default route is looked up towards (a UDP socket's connect sends nothing).
_ROUTE_PROBE = ("8.8.8.8", 53)


def interface_addresses() -> list[str]:
    """This machine's IP addresses other hosts may reach it by: every interface's, loopback
    and link-local ones left out (IPv4 first)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    with contextlib.suppress(OSError):
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                try:
                    address = ipaddress.ip_address(text)
                except ValueError:
                    continue
                if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                    found.append(address)
    found.sort(key=lambda a: a.version)
    return list(dict.fromkeys(str(a) for a in found))


def main_address() -> str | None:
    """The source address of this machine's default route (None: it has none)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(_ROUTE_PROBE)
        address = str(s.getsockname()[0])
        return None if address in WILDCARDS or address.startswith("127.") else address
    return None


def wildcard_host(certified: Collection[str], *, warn: bool = True) -> str:
    """The host a listener bound to every interface is given out by: this machine's main
    address, else another of its addresses, that ``certified`` (its certificate's names)
    holds; else ``127.0.0.1`` (said once when ``warn`` and the machine has other addresses:
    other hosts cannot reach the node)."""
    names = {h.lower() for h in certified}
    candidates = [a for a in (main_address(), *interface_addresses()) if a]
    for address in candidates:
        if address in names:
            return address
    if warn and candidates:
        log.warning(
            "this node listens on every interface but its certificate names none of this "
            "machine's addresses (%s): it gives out %s, so only nodes on this machine can "
            "reach it. Start it with --advertise-host ADDRESS, an address its certificate "
            "names (`bacalhau ca issue --host ADDRESS` certifies it for one)",
            ", ".join(candidates[:4]),
            LOOPBACK,
        )
    return LOOPBACK


def node_wildcard_host(config: NodeConfig, files: NodeFiles) -> str:
    """:func:`wildcard_host` for a node whose certificate is in ``files``; a node whose gRPC
    listener is given out by an address of its own (``--advertise-host``, a bound address)
    is not warned about."""
    warn = not config.advertise_host and config.grpc_host in WILDCARDS
    return wildcard_host(certified_hosts(files), warn=warn)


def given_out(bind: str, advertise: str, wildcard: str) -> str:
    """The host a listener bound to ``bind`` is given out by: ``advertise`` when set, else
    the bound address itself, or ``wildcard`` for one bound to every interface."""
    if advertise:
        return advertise
    return wildcard if bind in WILDCARDS else bind
