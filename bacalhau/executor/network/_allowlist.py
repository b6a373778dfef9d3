"""The domains an ``HTTP``-mode job may reach (``Network.Domains``), as Bacalhau matches them.

Bacalhau hands the list to a Squid gateway as ``dstdomain`` entries, so the semantics are
Squid's: ``example.com`` matches that host only; a leading dot, ``.example.com``, matches
``example.com`` itself and every name below it. ``*.example.com`` is accepted as another
spelling of ``.example.com``. An entry that is an IP address matches a request naming that
address literally. Names compare case-insensitively and without a trailing dot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DomainAllowList", "normalise_host"]


def normalise_host(host: str) -> str:
    """Lower-case, without a trailing dot or IPv6 brackets: the form entries are compared in."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DomainAllowList:
    """An immutable allow-list; :meth:`allows` answers for one host name or address."""

    exact: frozenset[str]
    suffixes: frozenset[str]
    addresses: frozenset[str]

    @classmethod
    def of(cls, entries: Iterable[str]) -> DomainAllowList:
        exact: set[str] = set()
        suffixes: set[str] = set()
        addresses: set[str] = set()
        for raw in entries:
            entry = normalise_host(raw)
            if entry.startswith("*."):
                entry = entry[1:]
            address = _ip(entry)
            if address is not None:
                addresses.add(str(address))
            elif entry.startswith("."):
                if len(entry) > 1:
                    suffixes.add(entry)
            elif entry:
                exact.add(entry)
        return cls(frozenset(exact), frozenset(suffixes), frozenset(addresses))

    def allows(self, host: str) -> bool:
        name = normalise_host(host)
        if not name:
            return False
        address = _ip(name)
        if address is not None:
            # An address is reached only when listed as such, never through a wildcard.
            return str(address) in self.addresses
        if name in self.exact:
            return True
        # ".example.com" covers "example.com" and "a.b.example.com".
        dotted = "." + name
        return any(dotted.endswith(suffix) for suffix in self.suffixes)
