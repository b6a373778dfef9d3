"""A task's resources, network and timeouts as job files spell them, and the durations and
sizes they are written in (Bacalhau v1 spellings; see :mod:`bacalhau.models._job`)."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import Obj
from bacalhau.models._ports import PortMapping
from bacalhau.models._resources import Resources, parse_cpu, parse_size


@dataclass(slots=True)
class ResourcesConfig:
    """Resources as the user writes them (strings); :meth:`parse` turns them into numbers."""

    cpu: str = ""
    memory: str = ""
    disk: str = ""
    gpu: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("CPU", self.cpu),
            ("Memory", self.memory),
            ("Disk", self.disk),
            ("GPU", self.gpu),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> ResourcesConfig:
        return cls(
            cpu=o.get_str("CPU"),
            memory=o.get_str("Memory"),
            disk=o.get_str("Disk"),
            gpu=o.get_str("GPU"),
        )

    def is_empty(self) -> bool:
        return not (self.cpu or self.memory or self.disk or self.gpu)

    def normalise(self) -> None:
        """Lower-case and strip spaces, as Bacalhau does on submit."""
        self.cpu = self.cpu.replace(" ", "").lower()
        self.memory = self.memory.replace(" ", "").lower()
        self.disk = self.disk.replace(" ", "").lower()
        self.gpu = self.gpu.replace(" ", "").lower()

    def parse(self, *, path: str = "Resources") -> Resources:
        cpu, memory, disk, gpu = _parsed(self.cpu, self.memory, self.disk, self.gpu, path)
        return Resources(cpu=cpu, memory=memory, disk=disk, gpu=gpu)


# Remembered: ranking parses a job's resources for every node it weighs, and a cluster's
# jobs ask for a handful of distinct amounts. (An invalid amount raises each time.)
@functools.lru_cache(maxsize=1024)
def _parsed(
    cpu_text: str, memory_text: str, disk_text: str, gpu_text: str, path: str
) -> tuple[float, int, int, int]:
    gpu = 0
    if gpu_text:
        try:
            gpu = int(gpu_text)
        except ValueError:
            raise InvalidJobSpec(f"invalid GPU count {gpu_text!r}", field=f"{path}.GPU") from None
        if gpu < 0:
            raise InvalidJobSpec("GPU count must be >= 0", field=f"{path}.GPU")
        if gpu > _MAX_INT64:
            raise InvalidJobSpec(f"GPU count {_short(gpu_text)} is too large", field=f"{path}.GPU")
    cpu = parse_cpu(cpu_text, field=f"{path}.CPU") if cpu_text else 0.0
    if not math.isfinite(cpu):
        raise InvalidJobSpec(f"CPU quantity {_short(cpu_text)} is too large", field=f"{path}.CPU")
    return cpu, _size(memory_text, f"{path}.Memory"), _size(disk_text, f"{path}.Disk"), gpu


#: Largest byte count or GPU count the wire protocol carries (int64).
_MAX_INT64 = 2**63 - 1


def _size(text: str, field: str) -> int:
    """A byte size within int64 (a float overflow on absurd sizes is the user's error)."""
    if not text:
        return 0
    try:
        size = parse_size(text, field=field)
    except OverflowError:
        size = _MAX_INT64 + 1
    if size > _MAX_INT64:
        raise InvalidJobSpec(
            f"size {_short(text)} is too large", field=field, hint="sizes go up to 8 EiB"
        )
    return size


def _short(text: str) -> str:
    """A user's value quoted in a message, cut short when absurdly long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


class NetworkType(StrEnum):
    """A task's network (Bacalhau's names, any case). ``None``: none. ``Full`` and ``Host``:
    the compute node's own network (Bacalhau v1.7 split them; a container gets the host's
    network for both). ``Bridge``: a network of its own with a route out (Docker's bridge).
    ``HTTP``: only the listed domains, through a proxy. ``Default`` (v1.7) leaves the choice
    to the cluster, and this cluster's choice is no network: a job gets a network only by
    asking for one, and only on a node whose operator accepts networked jobs."""

    NONE = "None"
    FULL = "Full"
    HTTP = "HTTP"
    HOST = "Host"
    BRIDGE = "Bridge"
    DEFAULT = "Default"

    @property
    def networked(self) -> bool:
        """Whether the task can reach anything beyond itself."""
        return self not in _CLOSED

    @property
    def allocates_ports(self) -> bool:
        """Whether a task on this network may have ``Ports`` (Host, Full, Bridge)."""
        return self in _PORTED

    @property
    def shares_host_network(self) -> bool:
        """Whether the task is on the node's own network (Host, Full): it listens on its
        host ports itself, with nothing published."""
        return self in _HOST

    @classmethod
    def parse(cls, value: object, *, field: str = "Network.Type") -> NetworkType:
        if value is None or value == "":
            return cls.NONE
        # Bacalhau before v1.7 numbered None, Full and HTTP 0, 1 and 2.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
            return (cls.NONE, cls.FULL, cls.HTTP)[value]
        if isinstance(value, str):
            member = _NETWORK_TYPES.get(value.strip().lower())
            if member is not None:
                return member
        raise InvalidJobSpec(
            f"invalid network type {value!r}",
            field=field,
            hint="use None, Default, Host, Bridge, Full or HTTP",
        )


_CLOSED = frozenset({NetworkType.NONE, NetworkType.DEFAULT})
_HOST = frozenset({NetworkType.HOST, NetworkType.FULL})
_PORTED = frozenset({NetworkType.HOST, NetworkType.FULL, NetworkType.BRIDGE})


#: Network types by lower-cased name: every decoded task reads one, and iterating an enum
#: costs several times a dict lookup.
_NETWORK_TYPES = {member.value.lower(): member for member in NetworkType}


@dataclass(slots=True)
class NetworkConfig:
    """A task's ``Network``: its type, the domains of an HTTP network, and the ports it
    listens on (see :mod:`bacalhau.models._ports`)."""

    type: NetworkType = NetworkType.NONE
    domains: list[str] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type.value}
        if self.domains:
            out["Domains"] = list(self.domains)
        if self.ports:
            out["Ports"] = [p.to_dict() for p in self.ports]
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> NetworkConfig:
        where = o.sub("Ports")
        return cls(
            type=NetworkType.parse(o.raw("Type"), field=o.sub("Type")),
            domains=[d.lower() for d in o.str_list("Domains")],
            ports=[
                PortMapping.from_obj(Obj(item, f"{where}[{i}]"))
                for i, item in enumerate(o.get_list("Ports"))
            ],
        )


@dataclass(slots=True)
class TimeoutConfig:
    """Timeouts in whole seconds; 0 means none."""

    execution_timeout: int = 0
    queue_timeout: int = 0
    total_timeout: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.execution_timeout:
            out["ExecutionTimeout"] = self.execution_timeout
        if self.queue_timeout:
            out["QueueTimeout"] = self.queue_timeout
        if self.total_timeout:
            out["TotalTimeout"] = self.total_timeout
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> TimeoutConfig:
        return cls(
            execution_timeout=o.get_int("ExecutionTimeout"),
            queue_timeout=o.get_int("QueueTimeout"),
            total_timeout=o.get_int("TotalTimeout"),
        )

    def is_empty(self) -> bool:
        return not (self.execution_timeout or self.queue_timeout or self.total_timeout)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")


def parse_duration(text: str, *, field: str) -> float:
    """Seconds in a Go-style duration (``"1s"``, ``"500ms"``, ``"1m30s"``; ``"0"`` is zero)."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise InvalidJobSpec(
            f"invalid duration {text!r}",
            field=field,
            hint='write a duration such as "1s", "500ms" or "2m"',
        )
    return total
