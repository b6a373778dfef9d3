"""How much this node offers, how much a job uses, and how much is in use.

Like Bacalhau, a node offers 70 % of the host's CPU cores, memory and free disk of its data
directory (and every GPU), unless the operator says otherwise; a job that asks for nothing is
counted as CPU 0.1 and memory 100 MiB so that a flood of tiny jobs still queues.

GPUs are counted and, when the node knows its devices (``executor.detect_gpus``), handed out
by device: each running execution holds specific GPUs until it ends, so two concurrent jobs
never share one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from bacalhau.executor import GPU
from bacalhau.models import Job, Resources

#: Share of the host a node offers by default (GPUs: all of them).
DEFAULT_ALLOCATED_FRACTION = 0.7

#: What a job uses when it does not say (Bacalhau's DefaultJobResourceLimits).
DEFAULT_JOB_RESOURCES = Resources(cpu=0.1, memory=100 * 2**20)


def host_resources(data_dir: Path, gpus: Sequence[GPU] = ()) -> Resources:
    """The whole host: usable cores, physical memory, free disk where ``data_dir`` lives, and
    ``gpus`` (those detected)."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = float(os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        memory = 0
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the data dir may not be created yet: measure its filesystem
    disk = shutil.disk_usage(probe).free
    return Resources(cpu=cores, memory=memory, disk=disk, gpu=len(gpus))


def allocated_capacity(
    data_dir: Path,
    *,
    fraction: float = DEFAULT_ALLOCATED_FRACTION,
    override: Resources | None = None,
    gpus: Sequence[GPU] = (),
) -> Resources:
    """What this node offers: ``fraction`` of the host (every one of ``gpus``), any non-zero
    ``override`` field wins."""
    if not 0 < fraction <= 1:
        raise ValueError(f"allocated fraction must be in (0, 1], got {fraction}")
    host = host_resources(data_dir, gpus)
    total = Resources(
        cpu=round(host.cpu * fraction, 3),
        memory=int(host.memory * fraction),
        disk=int(host.disk * fraction),
        gpu=host.gpu,
    )
    if override is not None:
        total = Resources(
            cpu=override.cpu or total.cpu,
            memory=override.memory or total.memory,
            disk=override.disk or total.disk,
            gpu=override.gpu or total.gpu,
        )
    return total


def queue_deadline(job: Job) -> int:
    """When (Unix ns) an execution of ``job`` still waiting for resources has waited past
    the job's ``QueueTimeout``, counted from the job's creation as the requester counts it
    (0: no limit)."""
    timeout = job.task.timeouts.queue_timeout if job.tasks else 0
    if timeout <= 0 or job.create_time <= 0:
        return 0
    return job.create_time + timeout * 1_000_000_000


def job_usage(job: Job, *, defaults: Resources = DEFAULT_JOB_RESOURCES) -> Resources:
    """What ``job`` will use here: its task's resources, each unset quantity from ``defaults``.

    Raises :class:`~bacalhau.errors.InvalidJobSpec` for an unparsable quantity.
    """
    asked = job.task.resources.parse(path="Tasks[0].Resources") if job.tasks else Resources()
    return Resources(
        cpu=asked.cpu or defaults.cpu,
        memory=asked.memory or defaults.memory,
        disk=asked.disk or defaults.disk,
        gpu=asked.gpu or defaults.gpu,
    )


class CapacityTracker:
    """The resources of the executions running now, against the node's total.

    With ``gpus`` (the node's devices), an execution asking for N GPUs is given N specific
    free ones (lowest index first) when it is reserved, held until it is released; without
    them (an operator's count and no device seen), GPUs are only counted.
    """

    def __init__(self, total: Resources, gpus: Sequence[GPU] = ()) -> None:
        self._total = total
        self._running: dict[str, Resources] = {}
        # Only as many devices as the node offers: an operator may offer fewer than it has.
        self._gpus = tuple(gpus)[: total.gpu]
        self._gpus_held: dict[str, tuple[GPU, ...]] = {}

    @property
    def total(self) -> Resources:
        return self._total

    @property
    def running_count(self) -> int:
        return len(self._running)

    def used(self) -> Resources:
        used = Resources()
        for usage in self._running.values():
            used = used.add(usage)
        return used

    def available(self) -> Resources:
        """What is left for new executions (never negative)."""
        return self._total.sub(self.used())

    def try_reserve(self, execution_id: str, usage: Resources) -> bool:
        """Reserve ``usage`` for ``execution_id`` if it fits in what is available now."""
        if execution_id in self._running:
            return True
        if not usage.fits_in(self.available()):
            return False
        if usage.gpu and self._gpus:
            held = {g.key for gs in self._gpus_held.values() for g in gs}
            free = [g for g in self._gpus if g.key not in held]
            if len(free) < usage.gpu:
                return False
            self._gpus_held[execution_id] = tuple(free[: usage.gpu])
        self._running[execution_id] = usage
        return True

    def gpus_of(self, execution_id: str) -> tuple[GPU, ...]:
        """The devices reserved for ``execution_id`` (empty if none, or only counted)."""
        return self._gpus_held.get(execution_id, ())

    def release(self, execution_id: str) -> None:
        self._running.pop(execution_id, None)
        self._gpus_held.pop(execution_id, None)

    def is_reserved(self, execution_id: str) -> bool:
        return execution_id in self._running
