"""What a compute node offers of its host: ``capacity_fraction``, or Bacalhau's
``Compute.AllocatedCapacity.*`` per resource as a share of the host or an amount."""

from __future__ import annotations

import pytest

from bacalhau.config import NodeConfig
from bacalhau.models import Resources
from bacalhau.node._capacity import offered_capacity

HOST = Resources(cpu=8.0, memory=32 * 2**30, disk=1000 * 10**9, gpu=2)


def _offered(**settings: str) -> Resources:
    return offered_capacity(HOST, NodeConfig().with_overrides(settings))


def test_by_default_a_share_of_the_host_and_every_gpu() -> None:
    assert _offered() == Resources(cpu=5.6, memory=int(HOST.memory * 0.7), disk=700 * 10**9, gpu=2)
    assert _offered(capacity_fraction="0.5").cpu == 4.0


def test_each_resource_as_a_share_of_the_host() -> None:
    offered = _offered(
        **{
            "Compute.AllocatedCapacity.CPU": "50%",
            "Compute.AllocatedCapacity.Memory": "25%",
            "Compute.AllocatedCapacity.Disk": "10%",
            "Compute.AllocatedCapacity.GPU": "50%",
        }
    )
    assert offered == Resources(cpu=4.0, memory=8 * 2**30, disk=100 * 10**9, gpu=1)


def test_each_resource_as_an_amount_the_others_keep_the_fraction() -> None:
    offered = _offered(
        **{"Compute.AllocatedCapacity.CPU": "1500m", "Compute.AllocatedCapacity.Memory": "2Gi"}
    )
    assert (offered.cpu, offered.memory) == (1.5, 2 * 2**30)
    assert (offered.disk, offered.gpu) == (700 * 10**9, 2)
    assert _offered(**{"Compute.AllocatedCapacity.Disk": "1GB"}).disk == 10**9


@pytest.mark.parametrize(
    ("spec", "gpus"), [("100%", 2), ("10%", 1), ("0%", 0), ("0", 0), ("1", 1), ("4", 4)]
)
def test_gpus_a_share_is_at_least_one_unless_none(spec: str, gpus: int) -> None:
    assert _offered(**{"Compute.AllocatedCapacity.GPU": spec}).gpu == gpus


def test_a_share_of_a_host_without_gpus_is_none() -> None:
    no_gpu = Resources(cpu=2.0, memory=2**30, disk=10**9, gpu=0)
    config = NodeConfig().with_overrides({"Compute.AllocatedCapacity.GPU": "50%"})
    assert offered_capacity(no_gpu, config).gpu == 0
