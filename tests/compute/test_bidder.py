from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.compute import (
    DEFAULT_JOB_RESOURCES,
    Bidder,
    BidRequest,
    BidVerdict,
    allocated_capacity,
    default_strategies,
    host_resources,
    job_usage,
)
from bacalhau.errors import InvalidJobSpec
from bacalhau.models import InputSource, Job, NetworkType, Resources, SpecConfig
from bacalhau.publisher import LocalPublisher, NoopPublisher, Publisher
from tests.compute.jobs import make_execution
from tests.compute.shell_executor import ShellExecutor

BIG = Resources(cpu=4, memory=8 * 2**30, disk=100 * 2**30, gpu=0)


def job_of(**kwargs: object) -> Job:
    job = make_execution(**kwargs).job  # type: ignore[arg-type]
    assert job is not None
    return job


def bidder(
    *,
    executor: ShellExecutor | None = None,
    publishers: dict[str, Publisher] | None = None,
    max_job: Resources = BIG,
    networked: bool = False,
    storage: tuple[str, ...] = (),
) -> Bidder:
    executor = executor or ShellExecutor()
    strategies = default_strategies(
        executors={"shell": executor},
        publishers=publishers if publishers is not None else {"noop": NoopPublisher()},
        max_job_requirements=max_job,
        storage_sources=storage,
        accept_networked_jobs=networked,
    )
    return Bidder(node_id="node", strategies=strategies)


async def test_accepts_a_job_it_can_run() -> None:
    verdict = await bidder().bid(job_of(publisher="noop"))
    assert verdict == BidVerdict(True, "this node does accept this job")


async def test_engine_must_be_registered_and_installed() -> None:
    verdict = await bidder().bid(job_of(engine="docker"))
    assert not verdict.should_bid
    assert verdict.reason == "this node does not have the 'docker' engine installed"
    verdict = await bidder(executor=ShellExecutor(installed=False)).bid(job_of())
    assert verdict.reason == "this node does not have the 'shell' engine installed"


async def test_engine_spec_is_validated_by_the_executor() -> None:
    job = job_of()
    job.task.engine.params = {}
    verdict = await bidder().bid(job)
    assert not verdict.should_bid
    assert verdict.reason == ("the job's shell task cannot run: the shell engine needs a Command")


async def test_publisher_must_be_installed(tmp_path: Path) -> None:
    verdict = await bidder().bid(job_of(publisher="s3"))
    assert verdict == BidVerdict(False, "this node does not have the 's3' publisher installed")
    local = LocalPublisher(directory=tmp_path, address="127.0.0.1", port=6001)
    verdict = await bidder(publishers={"local": local}).bid(job_of(publisher="Local"))
    assert verdict.should_bid


@pytest.mark.parametrize(
    "kind", [NetworkType.HTTP, NetworkType.FULL, NetworkType.HOST, NetworkType.BRIDGE]
)
async def test_network_policy(kind: NetworkType) -> None:
    job = job_of(network=kind)
    verdict = await bidder().bid(job)
    assert not verdict.should_bid
    assert verdict.reason.startswith("this node does not accept jobs that require network access")
    # And how its operator would allow them.
    assert "JobAdmissionControl.AcceptNetworkedJobs=true" in verdict.reason
    assert (await bidder(networked=True).bid(job)).should_bid


@pytest.mark.parametrize("kind", [NetworkType.NONE, NetworkType.DEFAULT])
async def test_a_job_without_network_needs_no_consent(kind: NetworkType) -> None:
    assert (await bidder().bid(job_of(network=kind))).should_bid


async def test_input_sources_must_be_installed() -> None:
    job = job_of()
    job.task.input_sources = [InputSource(source=SpecConfig(type="s3"), target="/inputs")]
    verdict = await bidder().bid(job)
    assert verdict.reason == "this node does not have the 's3' input source installed"
    assert (await bidder(storage=("S3",)).bid(job)).should_bid


async def test_resources_within_max_job_requirements() -> None:
    small = Resources(cpu=1, memory=2**30, disk=10**9)
    verdict = await bidder(max_job=small).bid(job_of(cpu="2", memory="512Mb"))
    assert not verdict.should_bid
    assert verdict.reason == (
        "insufficient resources - requested: {CPU: 2, Memory: 512MB, Disk: 0B, GPU: 0}, "
        "available: {CPU: 1, Memory: 1.07GB, Disk: 1GB, GPU: 0}"
    )
    assert (await bidder(max_job=small).bid(job_of(cpu="500m"))).should_bid


async def test_unparsable_resources_are_a_rejection() -> None:
    verdict = await bidder().bid(job_of(cpu="lots"))
    assert not verdict.should_bid
    assert "invalid CPU quantity" in verdict.reason


async def test_first_rejection_wins_and_errors_reject() -> None:
    calls: list[str] = []

    class Accept:
        async def evaluate(self, request: BidRequest) -> BidVerdict:
            calls.append("accept")
            return BidVerdict.accept("fine")

    class Reject:
        def __init__(self, reason: str) -> None:
            self.reason = reason

        async def evaluate(self, request: BidRequest) -> BidVerdict:
            calls.append(self.reason)
            return BidVerdict.reject(self.reason)

    class Broken:
        async def evaluate(self, request: BidRequest) -> BidVerdict:
            calls.append("broken")
            raise InvalidJobSpec("the probe says no")

    class Crashing:
        async def evaluate(self, request: BidRequest) -> BidVerdict:
            raise RuntimeError("boom")

    job = job_of()
    verdict = await Bidder(
        node_id="n", strategies=[Accept(), Reject("first"), Reject("second")]
    ).bid(job)
    assert verdict == BidVerdict(False, "first")
    assert calls == ["accept", "first"]
    verdict = await Bidder(node_id="n", strategies=[Broken(), Reject("never")]).bid(job)
    assert verdict == BidVerdict(False, "the probe says no")
    verdict = await Bidder(node_id="n", strategies=[Crashing()]).bid(job)
    assert verdict == BidVerdict(False, "Crashing failed: boom")


async def test_strategies_see_the_usage_with_defaults() -> None:
    seen: list[Resources] = []

    class Spy:
        async def evaluate(self, request: BidRequest) -> BidVerdict:
            seen.append(request.usage)
            return BidVerdict.accept()

    await Bidder(node_id="n", strategies=[Spy()]).bid(job_of(memory="1gb"))
    assert seen == [Resources(cpu=0.1, memory=10**9)]


def test_job_usage_defaults_per_field() -> None:
    assert job_usage(job_of()) == DEFAULT_JOB_RESOURCES == Resources(cpu=0.1, memory=100 * 2**20)
    assert job_usage(job_of(cpu="2")) == Resources(cpu=2, memory=100 * 2**20)
    assert job_usage(job_of(cpu="250m", memory="1GiB")) == Resources(cpu=0.25, memory=2**30)


def test_allocated_capacity_is_seventy_percent_of_the_host(tmp_path: Path) -> None:
    host = host_resources(tmp_path)
    assert host.cpu >= 1 and host.memory > 0 and host.disk > 0
    total = allocated_capacity(tmp_path / "not-created-yet")
    assert abs(total.cpu - round(host.cpu * 0.7, 3)) < 1e-9
    assert total.memory == int(host.memory * 0.7)
    assert 0 < total.disk <= host.disk
    custom = allocated_capacity(tmp_path, override=Resources(cpu=16, memory=0))
    assert custom.cpu == 16 and custom.memory == int(host.memory * 0.7)
