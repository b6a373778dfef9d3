"""What a compute node offers of its host, from the operator's settings.

``capacity_fraction`` (70 % by default) applies to CPU, memory and disk (GPUs: every one);
each of Bacalhau's ``Compute.AllocatedCapacity.CPU/Memory/Disk/GPU`` (``allocated_*``)
replaces it for its resource, as a percentage of the host (``80%``) or an amount (``4``,
``16Gi``, ``1``). The values were checked when the configuration was loaded.
"""

from __future__ import annotations

from bacalhau.config import NodeConfig
from bacalhau.models import Resources, parse_cpu, parse_size


def offered_capacity(host: Resources, config: NodeConfig) -> Resources:
    """What the node offers of ``host`` (its whole machine) under ``config``."""
    fraction = config.capacity_fraction
    if not 0 < fraction <= 1:
        raise ValueError(f"allocated fraction must be in (0, 1], got {fraction}")
    cpu = config.allocated_cpu
    memory, disk = config.allocated_memory, config.allocated_disk
    return Resources(
        cpu=round(host.cpu * _share(cpu, fraction), 3) if _relative(cpu) else parse_cpu(cpu),
        memory=int(host.memory * _share(memory, fraction))
        if _relative(memory)
        else parse_size(memory),
        disk=int(host.disk * _share(disk, fraction)) if _relative(disk) else parse_size(disk),
        gpu=_gpus(config.allocated_gpu, host.gpu),
    )


def _relative(spec: str) -> bool:
    return not spec or spec.endswith("%")


def _share(spec: str, fraction: float) -> float:
    return float(spec[:-1]) / 100 if spec else fraction


def _gpus(spec: str, detected: int) -> int:
    if not spec:
        return detected
    if not spec.endswith("%"):
        return int(spec)
    share = float(spec[:-1]) / 100
    # As Bacalhau: a share of a host with GPUs is at least one GPU (but 0% is none).
    return max(int(detected * share), 1 if share > 0 and detected else 0)
