"""The requester's check of published results, per publisher, with real components: ``ipfs``
results asked of the producing node alone over the real BlockService (mutual TLS), ``local``
archives downloaded from the real result server; what cannot be checked says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.models import Job, SpecConfig
from bacalhau.node._result_check import PublishedResultChecker
from bacalhau.publisher import IPFSPublisher, LocalResultServer
from bacalhau.storage.cid import Blockstore, Importer
from bacalhau.transport import BlockClient
from tests.storage.test_exchange import (
    FlippingStore,
    StaticFinder,
    add,
    make_content,
    serving,
)
from tests.transport.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


async def test_ipfs_results_are_checked_block_by_block_at_their_node(
    tmp_path: Path, cluster: Cluster
) -> None:
    producer, other, requester = cluster.node(), cluster.node(), cluster.node()
    with (
        Blockstore(tmp_path / "producer") as producing,
        Blockstore(tmp_path / "other") as holding,
    ):
        root = add(producing, make_content(tmp_path / "content"))
        # Another node holds content the producer lacks: asking it would prove nothing.
        foreign = add(holding, make_content(tmp_path / "foreign"))
        async with (
            serving(producer, producing) as producer_peer,
            serving(other, holding) as other_peer,
            BlockClient(requester.files) as client,
        ):
            checker = PublishedResultChecker(
                peers=client, finder=StaticFinder([other_peer, producer_peer])
            )
            held = await checker.check(
                SpecConfig(type="ipfs", params={"CID": str(root)}), str(root), producer.node_id
            )
            assert (held.status, held.published_cid) == ("matched", str(root))

            claimed = await checker.check(
                SpecConfig(type="ipfs", params={"CID": str(foreign)}),
                str(foreign),
                producer.node_id,
            )
            assert claimed.status == "mismatch"
            assert f"node {producer.node_id} does not serve block {foreign}" in claimed.note

            small = PublishedResultChecker(
                max_bytes=1000, peers=client, finder=StaticFinder([producer_peer])
            )
            big = await small.check(
                SpecConfig(type="ipfs", params={"CID": str(root)}), str(root), producer.node_id
            )
            assert big.status == "unchecked" and "1000-byte limit" in big.note


async def test_ipfs_blocks_that_do_not_match_their_cid_are_a_mismatch(
    tmp_path: Path, cluster: Cluster
) -> None:
    producer, requester = cluster.node(), cluster.node()
    with Blockstore(tmp_path / "producer") as producing:
        root = add(producing, make_content(tmp_path / "content"))
        async with (
            serving(producer, FlippingStore(producing, root)) as peer,
            BlockClient(requester.files) as client,
        ):
            checker = PublishedResultChecker(peers=client, finder=StaticFinder([peer]))
            result = await checker.check(
                SpecConfig(type="ipfs", params={"CID": str(root)}), str(root), producer.node_id
            )
    assert result.status == "mismatch" and "does not match its CID" in result.note


async def test_a_hybrid_requester_checks_its_own_ipfs_results_in_its_store(
    tmp_path: Path,
) -> None:
    with Blockstore(tmp_path / "blocks") as store:
        published = await IPFSPublisher(store).publish(
            "e-1", Job(), make_content(tmp_path / "content")
        )
        cid = published.params["CID"]
        checker = PublishedResultChecker(local=store, node_id="me")
        assert (await checker.check(published, cid, "me")).status == "matched"
        # Another node's results cannot be asked for without the block exchange.
        other = await checker.check(published, cid, "someone-else")
        assert other.status == "unchecked" and "not reachable" in other.note


async def test_local_archives_are_downloaded_and_hashed(tmp_path: Path) -> None:
    results = make_content(tmp_path / "results")
    expected = str(Importer(None).add_path(results).cid)
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        published = await server.publisher().publish("e-1", Job(), results)
        assert published.params["CID"] == expected
        checker = PublishedResultChecker()
        assert (await checker.check(published, expected, "n")).status == "matched"
        (results / "sub" / "small.txt").write_text("altered\n")
        altered = await server.publisher().publish("e-1", Job(), results)
        found = await checker.check(altered, expected, "n")
        assert found.status == "mismatch"
        assert found.published_cid == altered.params["CID"] != expected
        beyond = await PublishedResultChecker(max_bytes=1000).check(altered, expected, "n")
        assert beyond.status == "unchecked" and "1000-byte limit" in beyond.note


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (SpecConfig(), "nothing was published"),
        (SpecConfig(type="noop", params={"CID": "QmX"}), "only a claim"),
        (SpecConfig(type="s3", params={"Bucket": "b", "Key": "k"}), "pre-signed URLs are disabled"),
        (SpecConfig(type="urlDownload", params={"URL": "file:///etc/passwd"}), "not HTTP"),
    ],
)
async def test_what_cannot_be_checked_says_why(result: SpecConfig, why: str) -> None:
    outcome = await PublishedResultChecker().check(result, "QmClaimed", "n")
    assert outcome.status == "unchecked" and why in outcome.note


async def test_archived_s3_results_are_checked_through_their_pre_signed_url(
    tmp_path: Path,
) -> None:
    results = make_content(tmp_path / "results")
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        # The archive as the S3 publisher uploads it, reachable at a (here local) URL.
        archive = await server.publisher().publish("e-1", Job(), results)
        cid = archive.params["CID"]
        s3 = SpecConfig(type="s3", params={"Bucket": "b", "Key": "k.tar.gz", "CID": cid})

        def presign(spec: SpecConfig) -> SpecConfig:
            url = archive.params["URL"] if spec.params.get("Key") == "k.tar.gz" else ""
            if not url:
                return spec  # plain objects: nothing to sign
            return SpecConfig(type="s3PreSigned", params={**spec.params, "PreSignedURL": url})

        checker = PublishedResultChecker(presign=presign)
        assert (await checker.check(s3, cid, "n")).status == "matched"
        assert (await checker.check(s3, "QmSomethingElse", "n")).status == "mismatch"
        plain = SpecConfig(type="s3", params={"Bucket": "b", "Key": "k/", "CID": cid})
        unsigned = await checker.check(plain, cid, "n")
        assert unsigned.status == "unchecked" and "no pre-signed URL" in unsigned.note
