"""Bidding sizes a job's inputs where their source can say, as Bacalhau sizes input volumes:
an S3 listing, a HEAD of a URL, content held here. Inputs larger than the disk the node offers
a job, or than its limit for one input, are declined at the bid, so the job goes to a node
that can take them instead of failing on every node part-way through a download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.compute import Bidder, default_strategies
from bacalhau.models import InputSource, Job, Resources, SpecConfig
from bacalhau.publisher import NoopPublisher
from bacalhau.storage import IPFSSource, S3Source, StorageSource, UrlDownloadSource
from bacalhau.storage.cid import Blockstore, Importer
from tests.compute.jobs import make_execution
from tests.compute.shell_executor import ShellExecutor
from tests.publisher.seaweedfs import S3Server

KB = 1000


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A server of a 50 KB file (with its length) and of a stream that gives none."""

    async def sized(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 50 * KB)

    async def unsized(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"x" * 50 * KB)
        return resp

    app = web.Application()
    app.router.add_get("/sized.bin", sized)
    app.router.add_get("/unsized.bin", unsized)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def job_reading(*sources: SpecConfig) -> Job:
    job = make_execution().job
    assert job is not None
    job.task.input_sources = [
        InputSource(source=spec, target=f"/inputs/{i}") for i, spec in enumerate(sources)
    ]
    return job


def bidder(sources: dict[str, StorageSource], *, disk: int) -> Bidder:
    strategies = default_strategies(
        executors={"shell": ShellExecutor()},
        publishers={"noop": NoopPublisher()},
        max_job_requirements=Resources(cpu=4, memory=2**30, disk=disk),
        input_sources=sources,
    )
    return Bidder(node_id="node", strategies=strategies)


async def test_s3_inputs_over_the_offered_disk_are_declined(s3: S3Server, creds: None) -> None:
    bucket = s3.new_bucket()
    for i in range(3):
        s3.client().put_object(Bucket=bucket, Key=f"data/{i}.bin", Body=b"x" * 40 * KB)
    spec = SpecConfig("s3", {"Bucket": bucket, "Key": "data/", "Endpoint": s3.endpoint})
    job = job_reading(spec)

    verdict = await bidder({"s3": S3Source()}, disk=100 * KB).bid(job)
    assert not verdict.should_bid
    assert verdict.reason == (
        "insufficient disk for the job's inputs - inputs: 120KB, available: 100KB"
    )
    assert (await bidder({"s3": S3Source()}, disk=200 * KB).bid(job)).should_bid

    over_limit = await bidder({"s3": S3Source(max_bytes=100 * KB)}, disk=10**9).bid(job)
    assert not over_limit.should_bid
    assert "holds 120000 bytes, more than the limit of 100000" in over_limit.reason


async def test_an_s3_input_that_cannot_be_listed_now_is_not_declined_for_its_size(
    s3: S3Server, creds: None
) -> None:
    """Preparing it says why (no such bucket, no credentials): sizing only weighs bytes."""
    spec = SpecConfig("s3", {"Bucket": "no-such-bucket", "Key": "x", "Endpoint": s3.endpoint})
    assert (await bidder({"s3": S3Source()}, disk=1).bid(job_reading(spec))).should_bid


async def test_url_inputs_are_sized_by_their_content_length(files: str) -> None:
    sources: dict[str, StorageSource] = {"urldownload": UrlDownloadSource()}
    sized = job_reading(SpecConfig("urlDownload", {"URL": f"{files}/sized.bin"}))
    verdict = await bidder(sources, disk=30 * KB).bid(sized)
    assert verdict.reason == (
        "insufficient disk for the job's inputs - inputs: 50KB, available: 30KB"
    )
    assert (await bidder(sources, disk=60 * KB).bid(sized)).should_bid

    limited: dict[str, StorageSource] = {"urldownload": UrlDownloadSource(max_bytes=10 * KB)}
    over = await bidder(limited, disk=10**9).bid(sized)
    assert "is larger than the download limit of 10000 bytes" in over.reason

    # No Content-Length: nothing to weigh (the download's own limit still holds).
    unsized = job_reading(SpecConfig("urlDownload", {"URL": f"{files}/unsized.bin"}))
    assert (await bidder(sources, disk=30 * KB).bid(unsized)).should_bid


async def test_a_url_that_names_nothing_is_declined_at_the_bid(files: str) -> None:
    """A 404 would fail the download on every node: the bid says so, and the job fails at
    once instead of spending its attempts node by node."""
    sources: dict[str, StorageSource] = {"urldownload": UrlDownloadSource()}
    missing = job_reading(SpecConfig("urlDownload", {"URL": f"{files}/missing.bin"}))
    verdict = await bidder(sources, disk=10**9).bid(missing)
    assert not verdict.should_bid
    assert verdict.reason == (
        f"this node cannot read this job's inputs: {files}/missing.bin: the server answers "
        "404 Not Found"
    )


async def test_content_held_here_is_sized_and_content_elsewhere_is_not(tmp_path: Path) -> None:
    with Blockstore(tmp_path / "blocks") as store:
        (tmp_path / "dir").mkdir()
        for i in range(4):
            (tmp_path / "dir" / f"{i}.bin").write_bytes(bytes([i]) * 30 * KB)
        root = Importer(store).add_path(tmp_path / "dir").cid
        elsewhere = Importer(None).add_bytes(b"only on another node").cid
        sources: dict[str, StorageSource] = {"ipfs": IPFSSource(store)}

        held = job_reading(SpecConfig("ipfs", {"CID": str(root)}))
        verdict = await bidder(sources, disk=100 * KB).bid(held)
        assert verdict.reason.startswith("insufficient disk for the job's inputs - inputs: 120")
        one_file = job_reading(SpecConfig("ipfs", {"CID": f"{root}/2.bin"}))
        assert (await bidder(sources, disk=100 * KB).bid(one_file)).should_bid
        absent = job_reading(SpecConfig("ipfs", {"CID": str(elsewhere)}))
        assert (await bidder(sources, disk=1).bid(absent)).should_bid


async def test_the_sizes_of_several_inputs_add_up(files: str, s3: S3Server, creds: None) -> None:
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="one.bin", Body=b"x" * 40 * KB)
    job = job_reading(
        SpecConfig("s3", {"Bucket": bucket, "Key": "one.bin", "Endpoint": s3.endpoint}),
        SpecConfig("urlDownload", {"URL": f"{files}/sized.bin"}),
    )
    sources: dict[str, StorageSource] = {"s3": S3Source(), "urldownload": UrlDownloadSource()}
    verdict = await bidder(sources, disk=80 * KB).bid(job)
    assert verdict.reason == (
        "insufficient disk for the job's inputs - inputs: 90KB, available: 80KB"
    )
    assert (await bidder(sources, disk=100 * KB).bid(job)).should_bid
