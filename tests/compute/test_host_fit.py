"""A Docker job asking for more CPUs than the machine has is declined at the bid, saying why,
however much the node offers: the engine would refuse the container and the job would lose
an attempt."""

from __future__ import annotations

from bacalhau.compute import BidRequest, HostCpusFit, job_usage
from tests.compute.jobs import make_execution


def _request(engine: str, cpu: str) -> BidRequest:
    job = make_execution(engine=engine, cpu=cpu, params={"Image": "busybox"}).job
    assert job is not None
    return BidRequest(node_id="n", job=job, usage=job_usage(job))


async def test_a_docker_job_asking_more_cpus_than_the_machine_is_declined() -> None:
    verdict = await HostCpusFit(2.0).evaluate(_request("docker", "4"))
    assert not verdict.should_bid
    assert "asks for 4 CPUs and this machine has 2" in verdict.reason


async def test_what_fits_the_machine_and_other_engines_are_bid_for() -> None:
    assert (await HostCpusFit(2.0).evaluate(_request("docker", "2"))).should_bid
    assert (await HostCpusFit(2.0).evaluate(_request("docker", "500m"))).should_bid
    assert (await HostCpusFit(2.0).evaluate(_request("wasm", "4"))).should_bid
