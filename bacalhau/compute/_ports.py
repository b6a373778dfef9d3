"""Host ports for the executions of this node: a task's ``Network.Ports`` (Bacalhau v1.7+).

A mapping without ``Static`` gets a port of the node's range (``Compute.Network.
PortRangeStart``..``PortRangeEnd``, 20000-32000 by default, as Bacalhau's); a ``Static`` one
gets its own port, anywhere. Either way the port must be held by no other live execution of
this node and be free on the host (a bind test, as Bacalhau does). Ports are taken when the
execution starts and given back when its run ends, however it ends.

Holdings live in memory only, and that is what survives a restart correctly: a restarted node
fails every execution that was under way and removes their containers before it runs anything
(see ``ComputeEndpoint.start`` and the Docker executor's leftovers), so no live execution holds
a port then; and anything else still listening on one fails the bind test.

The range is walked round-robin from a random place, so that a port just given back is the
last to be given again (its clients may still knock) and so that several compute nodes on one
host (a devstack) rarely try the same port at the same moment. Everything here runs on the
event loop without awaiting, so two executions starting at once cannot take the same port.

The bid is a first filter (:class:`PortsAvailable`): a node refuses a job whose static port
another of its executions holds or the host has taken, or whose other ports its range cannot
hold next to the running executions'. The allocation at start is what counts: a port taken
meanwhile fails the execution with a message naming it, and the requester retries elsewhere.
"""

from __future__ import annotations

import errno
import os
import random
import socket
from collections.abc import Iterable

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.errors import ExecutionFailed
from bacalhau.models import MAX_PORT, MIN_STATIC_PORT, NetworkConfig, PortMapping

__all__ = [
    "DEFAULT_PORT_RANGE_END",
    "DEFAULT_PORT_RANGE_START",
    "PortAllocator",
    "PortsAvailable",
    "host_port_free",
]

#: Bacalhau's defaults: clear of well-known services below and of Linux's ephemeral ports
#: (32768-60999) above, which outgoing connections take.
DEFAULT_PORT_RANGE_START = 20000
DEFAULT_PORT_RANGE_END = 32000

_HOLD_HINT = "the requester runs the job again, on this node or another, once the port is free"


class PortAllocator:
    """The host ports this node's live executions hold, and where new ones come from.

    ``start``..``end`` (inclusive) is the range for mappings without a static port; it must
    lie within 1024..65535 (``ValueError`` otherwise: a node refuses to start with it).
    """

    def __init__(
        self, start: int = DEFAULT_PORT_RANGE_START, end: int = DEFAULT_PORT_RANGE_END
    ) -> None:
        if not MIN_STATIC_PORT <= start <= MAX_PORT:
            raise ValueError(f"the first port must be between {MIN_STATIC_PORT} and {MAX_PORT}")
        if not MIN_STATIC_PORT <= end <= MAX_PORT:
            raise ValueError(f"the last port must be between {MIN_STATIC_PORT} and {MAX_PORT}")
        if end < start:
            raise ValueError(f"the range ends ({end}) before it starts ({start})")
        self._start = start
        self._end = end
        self._next = random.randint(start, end)
        #: port -> the execution holding it.
        self._holders: dict[int, str] = {}
        #: execution -> the ports it holds.
        self._held: dict[str, list[int]] = {}

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._end

    def holder(self, port: int) -> str | None:
        """The execution holding ``port``, if any."""
        return self._holders.get(port)

    def held_by(self, execution_id: str) -> list[int]:
        """The ports ``execution_id`` holds (none once released)."""
        return list(self._held.get(execution_id, ()))

    def free_in_range(self) -> int:
        """Ports of the range no execution holds (the host may have taken some)."""
        held = sum(1 for port in self._holders if self._start <= port <= self._end)
        return self._end - self._start + 1 - held

    def allocate(self, execution_id: str, network: NetworkConfig) -> list[PortMapping]:
        """Take host ports for every mapping of ``network`` and return the mappings with
        ``static`` set to the host port and, for a Bridge network, ``target`` to the
        container's. Nothing is taken when one cannot be: :class:`ExecutionFailed` says
        which and why."""
        if not network.ports or not network.type.allocates_ports:
            return []
        if execution_id in self._held:
            raise ExecutionFailed(
                f"execution {execution_id} already holds ports {self._held[execution_id]}",
                component="Compute",
            )
        bridge = not network.type.shares_host_network
        # A port given to a mapping without a Target is its container port as well: it must
        # not be one another mapping targets.
        targeted = {p.target for p in network.ports if bridge and p.target}
        taken: list[int] = []
        self._held[execution_id] = taken
        # Static ports first, then those that must avoid the targets, then the rest: a
        # mapping free to take any port never takes the one a constrained mapping needed.
        order = sorted(
            range(len(network.ports)),
            key=lambda i: (
                not network.ports[i].static,
                not (bridge and not network.ports[i].target),
            ),
        )
        out: list[PortMapping | None] = [None] * len(network.ports)
        try:
            for i in order:
                mapping = network.ports[i]
                address = mapping.host_network if bridge else ""
                if mapping.static:
                    port = self._claim_static(mapping, address, execution_id)
                else:
                    avoid = targeted if bridge and not mapping.target else ()
                    port = self._claim_from_range(mapping, address, execution_id, avoid)
                taken.append(port)
                out[i] = PortMapping(
                    name=mapping.name,
                    static=port,
                    target=(mapping.target or port) if bridge else 0,
                    host_network=mapping.host_network,
                )
        except BaseException:
            self.release(execution_id)
            raise
        return [m for m in out if m is not None]

    def release(self, execution_id: str) -> list[int]:
        """Give back every port ``execution_id`` holds; returns them (idempotent)."""
        ports = self._held.pop(execution_id, [])
        for port in ports:
            if self._holders.get(port) == execution_id:
                del self._holders[port]
        return ports

    def refusal(self, network: NetworkConfig) -> str:
        """Why this node could not give ``network`` its ports now ("" when it could): a
        static port held or taken, an address it does not have, a range too full."""
        if not network.ports or not network.type.allocates_ports:
            return ""
        bridge = not network.type.shares_host_network
        wanted = 0
        for mapping in network.ports:
            address = mapping.host_network if bridge else ""
            if not mapping.static:
                wanted += 1
                if address and _bind_errno(0, address) == errno.EADDRNOTAVAIL:
                    return _no_address(mapping)
                continue
            holder = self._holders.get(mapping.static)
            if holder is not None:
                return (
                    f"this node does not have port {mapping.static} free: its execution "
                    f"{holder} holds it"
                )
            code = _bind_errno(mapping.static, address)
            if code == errno.EADDRNOTAVAIL:
                return _no_address(mapping)
            if code is not None:
                return f"this node does not have port {mapping.static} free"
            if self._start <= mapping.static <= self._end:
                wanted += 1  # it comes out of the range's free ports too
        free = self.free_in_range()
        if wanted > free:
            return (
                f"this node does not have {wanted} free ports in its port range "
                f"{self._start}-{self._end} ({free} not held by its executions)"
            )
        return ""

    def _claim_static(self, mapping: PortMapping, address: str, execution_id: str) -> int:
        port = mapping.static
        holder = self._holders.get(port)
        if holder is not None:
            raise ExecutionFailed(
                f"port {port} ({mapping.name}) is held by execution {holder} on this node",
                component="Compute",
                hint=_HOLD_HINT,
            )
        code = _bind_errno(port, address)
        if code == errno.EADDRNOTAVAIL:
            raise ExecutionFailed(_no_address(mapping), component="Compute")
        if code is not None:
            raise ExecutionFailed(
                f"port {port} ({mapping.name}) is in use on this node: {_describe(code)}",
                component="Compute",
                hint=_HOLD_HINT,
            )
        self._holders[port] = execution_id
        return port

    def _claim_from_range(
        self, mapping: PortMapping, address: str, execution_id: str, avoid: Iterable[int]
    ) -> int:
        skip = set(avoid)
        size = self._end - self._start + 1
        offset = self._next - self._start
        for i in range(size):
            port = self._start + (offset + i) % size
            if port in self._holders or port in skip:
                continue
            code = _bind_errno(port, address)
            if code == errno.EADDRNOTAVAIL:
                raise ExecutionFailed(_no_address(mapping), component="Compute")
            if code is not None:
                continue
            self._holders[port] = execution_id
            self._next = port + 1 if port < self._end else self._start
            return port
        raise ExecutionFailed(
            f"no free port for {mapping.name} in this node's port range {self._start}-{self._end}",
            component="Compute",
            hint="the node's other executions and programs hold every port of its range "
            "(Compute.Network.PortRangeStart/PortRangeEnd); " + _HOLD_HINT,
        )


class PortsAvailable:
    """Bid only for jobs whose ports this node can give now (see :meth:`PortAllocator.
    refusal`): a job whose static port is taken here would only fail on start."""

    def __init__(self, ports: PortAllocator) -> None:
        self._ports = ports

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        # A bind test per static port: microseconds, made on the loop.
        reason = self._ports.refusal(request.job.task.network)
        if reason:
            return BidVerdict.reject(reason)
        return BidVerdict.accept("this node does have the ports this job asks for")


def host_port_free(port: int, address: str = "") -> bool:
    """Whether a TCP listener could bind ``port`` on ``address`` (every IPv4 interface when
    empty) right now; the answer may change the moment after."""
    return _bind_errno(port, address) is None


def _bind_errno(port: int, address: str) -> int | None:
    """The error binding ``address:port`` gives (None: it binds). ``SO_REUSEADDR`` as every
    real listener sets it (Docker's proxy, Go, most servers): connections of an earlier
    listener waiting out TIME_WAIT do not keep a port from being listened on again."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address or "0.0.0.0", port))
    except OSError as err:
        return err.errno or errno.EADDRINUSE
    return None


def _no_address(mapping: PortMapping) -> str:
    return (
        f"this node does not have the address {mapping.host_network} (HostNetwork of the port "
        f"{mapping.name})"
    )


def _describe(code: int) -> str:
    return os.strerror(code).lower()
