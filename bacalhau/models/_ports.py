"""A task's port mappings (Bacalhau v1.7+ ``Network.Ports``) and the rules they obey.

Each mapping names a port the task listens on. The compute node gives it a host port when
the execution starts (``Static`` when set, else one from the node's port range), tells the
task through ``BACALHAU_HOST_PORT_<Name>`` and ``BACALHAU_PORT_<Name>``, and releases it when
the execution ends. With a ``Bridge`` network the host port is published to the container's
``Target`` (the host port when unset) on ``HostNetwork`` (all interfaces when unset); with
``Host`` or ``Full`` the task shares the node's network and listens on the host port itself.

The rules are Bacalhau's (``pkg/models/network.go``), with two more where its looseness would
surprise a user: ``HostNetwork`` is refused where it cannot apply (Host and Full networks,
where the task picks its own address), and two Bridge mappings may not end up on one
container port when their targets default to equal static ports.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import Obj

if TYPE_CHECKING:
    from bacalhau.models._task_config import NetworkType

__all__ = [
    "HOST_PORT_ENV_PREFIX",
    "MAX_PORT",
    "MAX_PORT_NAME",
    "MIN_STATIC_PORT",
    "PORT_ENV_PREFIX",
    "PortMapping",
    "validate_ports",
]

#: The variable naming a mapping's host port: ``BACALHAU_HOST_PORT_<Name>``.
HOST_PORT_ENV_PREFIX = "BACALHAU_HOST_PORT_"
#: The variable naming the port the task listens on: ``BACALHAU_PORT_<Name>``.
PORT_ENV_PREFIX = "BACALHAU_PORT_"
#: Lowest static host port: the privileged ports (below 1024) are the node's own.
MIN_STATIC_PORT = 1024
MAX_PORT = 65535
#: Longest mapping name: its variable name stays within 256 characters, as Bacalhau bounds it.
MAX_PORT_NAME = 256 - len(HOST_PORT_ENV_PREFIX)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(slots=True)
class PortMapping:
    """One entry of ``Network.Ports``: ``{"Name", "Static"?, "Target"?, "HostNetwork"?}``.

    ``static`` is the host port (0: the compute node picks one from its range); ``target``
    the container port of a Bridge network (0: the host port); ``host_network`` the host
    address a Bridge port is published on ("": every interface). On a compute node, once
    allocated, ``static`` always holds the host port and a Bridge ``target`` the container's.
    """

    name: str = ""
    static: int = 0
    target: int = 0
    host_network: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Name": self.name}
        if self.static:
            out["Static"] = self.static
        if self.target:
            out["Target"] = self.target
        if self.host_network:
            out["HostNetwork"] = self.host_network
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> PortMapping:
        return cls(
            name=o.get_str("Name"),
            static=o.get_int("Static"),
            target=o.get_int("Target"),
            host_network=o.get_str("HostNetwork"),
        )


class Fail(Protocol):
    """How a task's checks report a fault: the error for a message, the field below the
    task and an optional hint (what :func:`validate_task` builds)."""

    def __call__(self, msg: str, sub: str, hint: str | None = None) -> InvalidJobSpec: ...


def validate_ports(ports: Sequence[PortMapping], network_type: NetworkType, fail: Fail) -> None:
    """Check a task's ``Network.Ports`` against its network type, raising what ``fail``
    builds for the first fault, naming its field (``Network.Ports[1].Static``)."""
    if not ports:
        return
    if not network_type.allocates_ports:
        raise fail(
            f"ports can only be set for Host, Full or Bridge networks, not {network_type.value}",
            "Network.Ports",
            "set Network.Type to Bridge (a host port published to the container) or Host "
            "(the task listens on the node's own port)",
        )
    bridge = not network_type.shares_host_network
    names: set[str] = set()
    statics: set[int] = set()
    targets: dict[int, str] = {}
    for i, port in enumerate(ports):
        at = f"Network.Ports[{i}]"
        _check_one(port, at, bridge, fail)
        if port.name in names:
            raise fail(
                f"duplicate port mapping name {port.name!r}",
                f"{at}.Name",
                "give each mapping a name of its own: it names the task's variables",
            )
        names.add(port.name)
        if port.static:
            if port.static in statics:
                raise fail(
                    f"duplicate port mapping static port {port.static}",
                    f"{at}.Static",
                    "give each mapping a host port of its own, or leave Static out",
                )
            statics.add(port.static)
        # Two mappings on one container port would publish one of them nowhere.
        target = port.target or (port.static if bridge else 0)
        if target:
            if target in targets:
                where = f"{at}.Target" if port.target else f"{at}.Static"
                raise fail(
                    f"port mappings {targets[target]!r} and {port.name!r} both go to the "
                    f"container's port {target}",
                    where,
                    "give each mapping its own Target (a mapping without one goes to its "
                    "host port)",
                )
            targets[target] = port.name


def _check_one(port: PortMapping, at: str, bridge: bool, fail: Fail) -> None:
    if not port.name:
        raise fail("port mapping name is required", f"{at}.Name", "name it, e.g. http")
    if not _ENV_NAME.fullmatch(port.name):
        raise fail(
            f"port name {port.name!r} must be a valid environment variable name",
            f"{at}.Name",
            "start with a letter or underscore, then letters, digits and underscores: the "
            f"task reads the port from {HOST_PORT_ENV_PREFIX}<Name>",
        )
    if len(port.name) > MAX_PORT_NAME:
        raise fail(f"port name too long (max {MAX_PORT_NAME} characters)", f"{at}.Name", None)
    if port.static and not MIN_STATIC_PORT <= port.static <= MAX_PORT:
        raise fail(
            f"static port {port.static} must be between {MIN_STATIC_PORT} and {MAX_PORT}",
            f"{at}.Static",
            "ports below 1024 are privileged; leave Static out to get a free port from "
            "the compute node's range",
        )
    if not 0 <= port.target <= MAX_PORT:
        raise fail(
            f"target port {port.target} must be between 1 and {MAX_PORT}",
            f"{at}.Target",
            "leave Target out to use the host port in the container too",
        )
    if port.target and not bridge:
        raise fail(
            "target ports can only be set for Bridge networks",
            f"{at}.Target",
            "with a Host network the task listens on the host port itself; drop Target",
        )
    if port.host_network:
        if not bridge:
            raise fail(
                "HostNetwork can only be set for Bridge networks",
                f"{at}.HostNetwork",
                "with a Host network the task chooses the address it listens on; drop HostNetwork",
            )
        if not _is_ip(port.host_network):
            raise fail(
                f"invalid host network IP address {port.host_network!r}",
                f"{at}.HostNetwork",
                "give an address of the compute node, e.g. 127.0.0.1 (local only) or "
                "0.0.0.0 (every interface)",
            )


def _is_ip(text: str) -> bool:
    # A scoped IPv6 address (fe80::1%eth0) is not one Docker can publish on, nor Go parses.
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


#: One label of a host name (underscores occur in real names, as in SRV records).
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.IGNORECASE)


def is_domain_entry(entry: str) -> bool:
    """Whether ``entry`` of ``Network.Domains`` names something: a host name (a leading
    ``.`` or ``*.`` for it and every name below it; a trailing dot allowed) or an IP address
    (IPv6 bracketed or not)."""
    text = entry.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text.removeprefix("*.") if text.startswith("*.") else text.removeprefix(".")
    name = name.removesuffix(".")
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in name.split("."))
