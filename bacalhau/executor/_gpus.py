"""The host's GPUs: found through their vendors' tools, and handed to containers.

Detection runs each vendor's tool when it is installed and parses what it prints:

- NVIDIA: ``nvidia-smi --query-gpu=index,name,memory.total,uuid,pci.bus_id
  --format=csv,noheader,nounits``;
- AMD: ``rocm-smi --showproductname --showmeminfo vram --showbus --json``;
- Intel: ``xpu-smi discovery --json``.

A tool that is missing, fails or prints something unexpected contributes no GPU (and a warning
in the log): a node must start, and offer what it can, on a host whose drivers are broken.

A container gets the GPUs allocated to its execution (:func:`docker_gpu_options`): NVIDIA ones
through a device request naming them by UUID (index when there is none), AMD ones as
``/dev/kfd`` plus their DRI nodes, Intel ones as their DRI nodes, as Bacalhau does.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "GPU",
    "GpuVendor",
    "detect_gpus",
    "docker_gpu_options",
    "gpu_labels",
    "host_gpus",
    "parse_nvidia_smi",
    "parse_rocm_smi",
    "parse_xpu_smi",
]

_log = logging.getLogger(__name__)

NVIDIA_SMI_ARGS = (
    "--query-gpu=index,name,memory.total,uuid,pci.bus_id",
    "--format=csv,noheader,nounits",
)
ROCM_SMI_ARGS = ("--showproductname", "--showmeminfo", "vram", "--showbus", "--json")
XPU_SMI_ARGS = ("discovery", "--json")
_TOOL_TIMEOUT = 10.0
_MIB = 1 << 20


class GpuVendor(StrEnum):
    """Vendor names as Bacalhau spells them."""

    NVIDIA = "NVIDIA"
    AMD = "AMDATI"
    INTEL = "Intel"


@dataclass(frozen=True, slots=True)
class GPU:
    """One GPU of the host. ``index`` is the vendor tool's index (unique per vendor)."""

    index: int
    name: str
    vendor: GpuVendor
    #: Memory in MiB (as Bacalhau reports it).
    memory: int
    uuid: str = ""
    #: PCI address, ``0000:07:00.0`` (domain of 4 hex digits).
    pci_address: str = ""

    @property
    def key(self) -> str:
        """What tells this GPU apart from every other on the host."""
        return f"{self.vendor}-{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """Bacalhau's GPU shape (Go keys)."""
        return {
            "Index": self.index,
            "Name": self.name,
            "Vendor": str(self.vendor),
            "Memory": self.memory,
            "PCIAddress": self.pci_address,
        }


Runner = Callable[[Sequence[str]], str | None]


def detect_gpus(run: Runner | None = None) -> list[GPU]:
    """Every GPU the installed vendor tools report, NVIDIA first, each vendor by index.

    ``run`` runs a tool (argv) and returns its stdout, or None when it is not installed or
    fails; by default the real tools are run.
    """
    runner = run or _run_tool
    found: list[GPU] = []
    for tool, args, parse in (
        ("nvidia-smi", NVIDIA_SMI_ARGS, parse_nvidia_smi),
        ("rocm-smi", ROCM_SMI_ARGS, parse_rocm_smi),
        ("xpu-smi", XPU_SMI_ARGS, parse_xpu_smi),
    ):
        output = runner([tool, *args])
        if output is None:
            continue
        try:
            found.extend(parse(output))
        except ValueError as e:
            _log.warning("ignoring the GPUs %s reports: cannot parse its output: %s", tool, e)
    return found


@functools.cache
def host_gpus() -> tuple[GPU, ...]:
    """The host's GPUs, detected once per process (the tools take up to seconds)."""
    return tuple(detect_gpus())


def _run_tool(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        _log.warning("%s failed: %s", argv[0], e)
        return None
    if done.returncode != 0:
        _log.warning("%s exited %d: %s", argv[0], done.returncode, done.stderr.strip()[:200])
        return None
    return done.stdout


def parse_nvidia_smi(text: str) -> list[GPU]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total,uuid[,pci.bus_id]`` CSV."""
    gpus = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise ValueError(f"line {n}: expected index, name, memory, uuid: {line!r}")
        try:
            index, memory = int(fields[0]), _int_or_zero(fields[2])
        except ValueError:
            raise ValueError(f"line {n}: index and memory must be numbers: {line!r}") from None
        gpus.append(
            GPU(
                index=index,
                name=fields[1],
                vendor=GpuVendor.NVIDIA,
                memory=memory,
                uuid=fields[3],
                pci_address=_pci(fields[4]) if len(fields) > 4 else "",
            )
        )
    return gpus


def parse_rocm_smi(text: str) -> list[GPU]:
    """Parse ``rocm-smi --showproductname --showmeminfo vram --showbus --json``."""
    data = _json_object(text)
    gpus = []
    for card, info in data.items():
        if not card.startswith("card") or not isinstance(info, dict):
            continue  # e.g. "system": driver versions
        try:
            index = int(card[4:])
        except ValueError:
            raise ValueError(f"unexpected card name {card!r}") from None
        memory = _int_or_zero(str(info.get("VRAM Total Memory (B)", "0"))) // _MIB
        name = str(info.get("Card series") or info.get("Card SKU") or info.get("Card model", ""))
        gpus.append(
            GPU(
                index=index,
                name=name,
                vendor=GpuVendor.AMD,
                memory=memory,
                uuid=str(info.get("Unique ID", "")),
                pci_address=_pci(str(info.get("PCI Bus", ""))),
            )
        )
    return sorted(gpus, key=lambda g: g.index)


def parse_xpu_smi(text: str) -> list[GPU]:
    """Parse ``xpu-smi discovery --json``."""
    data = _json_object(text)
    devices = data.get("device_list", [])
    if not isinstance(devices, list):
        raise ValueError("device_list is not a list")
    gpus = []
    for device in devices:
        if not isinstance(device, dict) or "device_id" not in device:
            raise ValueError(f"a device without device_id: {device!r}")
        memory = _int_or_zero(str(device.get("memory_physical_size_byte", "0"))) // _MIB
        gpus.append(
            GPU(
                index=int(device["device_id"]),
                name=str(device.get("device_name", "")),
                vendor=GpuVendor.INTEL,
                memory=memory,
                uuid=str(device.get("uuid", "")),
                pci_address=_pci(str(device.get("pci_bdf_address", ""))),
            )
        )
    return sorted(gpus, key=lambda g: g.index)


def gpu_labels(gpus: Iterable[GPU]) -> dict[str, str]:
    """Node labels describing the GPUs: ``GPU-<n>: <name>`` in host order, and the vendors.

    Lets a job select nodes with ``--constraints 'GPU-0=...'`` or ``gpu-vendor``.
    """
    labels: dict[str, str] = {}
    vendors: list[str] = []
    for n, gpu in enumerate(gpus):
        labels[f"GPU-{n}"] = gpu.name
        if gpu.vendor not in vendors:
            vendors.append(gpu.vendor)
    if vendors:
        labels["gpu-vendor"] = ",".join(vendors)
    return labels


def docker_gpu_options(gpus: Sequence[GPU]) -> dict[str, Any]:
    """``create_host_config`` arguments giving a container exactly ``gpus``."""
    if not gpus:
        return {}
    from docker.types import DeviceRequest  # the executor layer's Docker client

    options: dict[str, Any] = {}
    nvidia = [g.uuid or str(g.index) for g in gpus if g.vendor == GpuVendor.NVIDIA]
    if nvidia:
        options["device_requests"] = [
            DeviceRequest(driver="nvidia", device_ids=nvidia, capabilities=[["gpu"]])
        ]
    devices: list[str] = []
    if any(g.vendor == GpuVendor.AMD for g in gpus):
        devices.append("/dev/kfd:/dev/kfd:rwm")
    for gpu in gpus:
        if gpu.vendor in (GpuVendor.AMD, GpuVendor.INTEL):
            for node in ("card", "render"):
                path = f"/dev/dri/by-path/pci-{gpu.pci_address.lower()}-{node}"
                devices.append(f"{path}:{path}:rwm")
    if devices:
        options["devices"] = devices
    return options


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _int_or_zero(text: str) -> int:
    """A number, or 0 for the ``[N/A]`` tools print when they cannot tell."""
    text = text.strip()
    if not text or text.startswith("["):
        return 0
    return int(float(text))


def _pci(address: str) -> str:
    """``00000000:07:00.0`` (nvidia-smi's 8-digit domain) -> ``0000:07:00.0``."""
    address = address.strip()
    domain, sep, rest = address.partition(":")
    if sep and len(domain) == 8:
        return f"{domain[4:]}:{rest}".lower()
    return address.lower()
