"""The addresses a node is known by: what it gives out for a listener bound to every
interface, and what a requester certifies itself for on its first start.

A node binding every interface (``0.0.0.0``, the default) without ``--advertise-host`` used
to give out ``127.0.0.1``: other hosts then probed, and dialled, their own loopback, and a
healthy node looked dead to them. It now gives out an address of this machine: one its
certificate names when it names some (the main one first: the source address of the default
route), else the main address. Members dial each other by the node ID their certificates
name, not by address; only a seed, dialled before its ID is known, must be certified for the
address it is dialled by. A machine with no address but loopback gives out ``127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Collection

import ifaddr

from bacalhau.identity import NodeFiles, certified_hosts

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


def wildcard_host(certified: Collection[str]) -> str:
    """The host a listener bound to every interface is given out by: the first of this
    machine's addresses (its main one first) that ``certified`` (its certificate's names)
    holds, else its main address, else ``127.0.0.1`` (a machine with loopback alone)."""
    names = {h.lower() for h in certified}
    candidates = list(dict.fromkeys(a for a in (main_address(), *interface_addresses()) if a))
    for address in candidates:
        if address in names:
            return address
    return candidates[0] if candidates else LOOPBACK


def node_wildcard_host(files: NodeFiles) -> str:
    """:func:`wildcard_host` for a node whose certificate is in ``files``."""
    return wildcard_host(certified_hosts(files))


def given_out(bind: str, advertise: str, wildcard: str) -> str:
    """The host a listener bound to ``bind`` is given out by: ``advertise`` when set, else
    the bound address itself, or ``wildcard`` for one bound to every interface."""
    if advertise:
        return advertise
    return wildcard if bind in WILDCARDS else bind
