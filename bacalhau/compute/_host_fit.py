"""Jobs this machine can never run, whatever the node offers.

An operator may offer more than the host has (``Compute.AllocatedCapacity.CPU=4`` on two
cores): more jobs then share the machine at once. But one Docker container can be given no
more CPUs than the machine has (the engine refuses it), so a Docker job asking for more
would be accepted, then fail at start and cost the job an attempt. It is declined instead,
saying why, and goes to a node that can run it.
"""

from __future__ import annotations

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.models import format_cpu

__all__ = ["HostCpusFit"]


class HostCpusFit:
    """Bid for a Docker job only when its CPU fits the machine's CPUs (``host_cpus``)."""

    def __init__(self, host_cpus: float) -> None:
        self._host_cpus = host_cpus

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        if request.job.task.engine.type.lower() != "docker":
            return BidVerdict.accept()
        if self._host_cpus > 0 and request.usage.cpu > self._host_cpus:
            return BidVerdict.reject(
                f"the job asks for {format_cpu(request.usage.cpu)} CPUs and this machine has "
                f"{format_cpu(self._host_cpus)}: Docker gives a container no more than the "
                "machine has"
            )
        return BidVerdict.accept("the job's CPU fits this machine")
