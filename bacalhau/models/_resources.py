"""Resource quantities: CPU as k8s quantities, memory and disk as humanized byte sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bacalhau.errors import InvalidJobSpec

_CPU_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40,
    "p": 10**15, "pb": 10**15, "pi": 2**50, "pib": 2**50,
}  # fmt: skip


def parse_cpu(text: str, *, field: str = "CPU") -> float:
    """``"500m"`` -> 0.5, ``"2"`` -> 2.0."""
    m = _CPU_RE.match(text)
    if not m:
        raise InvalidJobSpec(
            f"invalid CPU quantity {text!r}",
            field=field,
            hint='use cores ("2", "0.5") or millicores ("500m")',
        )
    value = float(m.group(1))
    return value / 1000 if m.group(2) else value


def parse_size(text: str, *, field: str = "Memory") -> int:
    """``"1Gb"`` -> 10**9, ``"1GiB"`` -> 2**30, ``"512mi"`` -> 512 * 2**20."""
    m = _SIZE_RE.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise InvalidJobSpec(
            f"invalid size {text!r}",
            field=field,
            hint='use a number with a unit such as "512Mb", "1Gb" or "1GiB"',
        )
    size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size == 0 and float(m.group(1)) > 0:
        # "0.5" with no unit is half a byte: read as no limit at all, which is surely not
        # what was meant.
        raise InvalidJobSpec(
            f"invalid size {text!r}: less than one byte",
            field=field,
            hint='sizes without a unit are bytes; add a unit, such as "0.5Gb" or "512Mb"',
        )
    return size


def format_size(n: int) -> str:
    """Bytes as a short human string (decimal units, as Bacalhau prints them)."""
    units = (("EB", 10**18), ("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6))
    for unit, size in (*units, ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n}B"


def format_cpu(cores: float) -> str:
    """Cores as a person writes them: ``2``, ``0.5``, ``0.0000001`` (never ``1e-07``, which
    reads as a typo), to nine decimals at most."""
    text = f"{cores:.9f}".rstrip("0").rstrip(".")
    if cores >= 1e15 or (text in ("0", "-0") and cores != 0):
        return f"{cores:g}"  # past what decimals show well: the short form is clearer
    return text


@dataclass(slots=True)
class Resources:
    """Parsed resources: CPU in cores, memory and disk in bytes, GPU count."""

    cpu: float = 0.0
    memory: int = 0
    disk: int = 0
    gpu: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cpu:
            out["CPU"] = self.cpu
        if self.memory:
            out["Memory"] = self.memory
        if self.disk:
            out["Disk"] = self.disk
        if self.gpu:
            out["GPU"] = self.gpu
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Resources:
        from bacalhau.models._codec import Obj

        o = Obj(data, "Resources")
        return cls(
            cpu=o.get_float("CPU"),
            memory=o.get_int("Memory"),
            disk=o.get_int("Disk"),
            gpu=o.get_int("GPU"),
        )

    def add(self, other: Resources) -> Resources:
        return Resources(
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.disk + other.disk,
            self.gpu + other.gpu,
        )

    def sub(self, other: Resources) -> Resources:
        return Resources(
            max(0.0, self.cpu - other.cpu),
            max(0, self.memory - other.memory),
            max(0, self.disk - other.disk),
            max(0, self.gpu - other.gpu),
        )

    def fits_in(self, capacity: Resources) -> bool:
        """True when every requested quantity is within ``capacity``."""
        return (
            self.cpu <= capacity.cpu + 1e-9
            and self.memory <= capacity.memory
            and self.disk <= capacity.disk
            and self.gpu <= capacity.gpu
        )

    def shortfall(self, capacity: Resources, *, room: str = "") -> str:
        """Human explanation of what does not fit (empty when it fits): "CPU 4 > 2", or
        with ``room`` (what ``capacity`` is, e.g. "free"), "needs CPU 4, 2 free"."""
        size = format_size
        # (Room left can be below zero: a node past its over-subscription says 0.)
        have = Resources(
            max(capacity.cpu, 0),
            max(capacity.memory, 0),
            max(capacity.disk, 0),
            max(capacity.gpu, 0),
        )
        short = [
            ("CPU", self.cpu > capacity.cpu + 1e-9, format_cpu(self.cpu), format_cpu(have.cpu)),
            ("memory", self.memory > capacity.memory, size(self.memory), size(have.memory)),
            ("disk", self.disk > capacity.disk, size(self.disk), size(have.disk)),
            ("GPU", self.gpu > capacity.gpu, str(self.gpu), str(have.gpu)),
        ]
        if room:
            parts = [f"needs {n} {asked}, {have} {room}" for n, over, asked, have in short if over]
        else:
            parts = [f"{n} {asked} > {have}" for n, over, asked, have in short if over]
        return ", ".join(parts)
