"""Block exchange between real nodes: BlockService over mutual TLS on loopback, real
blockstores, the ipfs input source reading through the exchange."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from bacalhau.errors import BlockNotFound
from bacalhau.models import NOT_IN_CLUSTER, SpecConfig
from bacalhau.storage import BlockExchange, BlockPeer, IPFSSource
from bacalhau.storage.cid import CID, Blockstore, Importer, ImportOptions, export, ls
from bacalhau.transport import BlockClient, add_block_service, server_credentials
from bacalhau.transport._tls import server_options
from tests.transport.cluster import Cluster, Node

#: Small chunks so a few hundred KiB make a DAG of many blocks and two levels.
OPTIONS = ImportOptions(chunk_size=4096, max_links=8)


@dataclass
class StaticFinder:
    """Names the same members for every root (in the order given)."""

    peers: list[BlockPeer]

    def providers(self, root: CID) -> Sequence[BlockPeer]:
        return self.peers


class FlippingStore:
    """A member whose copy of one block is damaged (its store still answers with it)."""

    def __init__(self, store: Blockstore, damaged: CID) -> None:
        self._store = store
        self._damaged = damaged

    def has(self, cid: CID) -> bool:
        return self._store.has(cid)

    def get(self, cid: CID) -> bytes:
        data = self._store.get(cid)
        return bytes([data[0] ^ 0xFF]) + data[1:] if cid == self._damaged else data


@asynccontextmanager
async def serving(node: Node, store: Any) -> AsyncIterator[BlockPeer]:
    server = grpc.aio.server(options=server_options())
    add_block_service(server, store)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(node.files))
    await server.start()
    try:
        yield BlockPeer(node.node_id, f"127.0.0.1:{port}")
    finally:
        await server.stop(0)


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Blockstore, Blockstore]]:
    with Blockstore(tmp_path / "a") as a, Blockstore(tmp_path / "b") as b:
        yield a, b


def make_content(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "small.txt").write_text("hello\n")
    return root


def add(store: Blockstore, path: Path) -> CID:
    with store.batch() as sink:
        return Importer(sink, OPTIONS).add_path(path).cid


async def test_a_dag_is_fetched_verified_and_exported(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    root = add(theirs, make_content(tmp_path / "content"))
    total = theirs.stats().blocks
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([peer]), window=4, batch=8)
        report = await exchange.fetch_dag(root, timeout=10)
    assert (report.blocks_fetched, report.blocks_present) == (total, 0)
    export(mine, root, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == (
        tmp_path / "content" / "big.bin"
    ).read_bytes()
    assert (tmp_path / "out" / "sub" / "small.txt").read_text() == "hello\n"


async def test_an_interrupted_fetch_resumes_without_fetching_stored_blocks_again(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    content = make_content(tmp_path / "content")
    root = add(theirs, content)
    # What an interrupted fetch left: the file's DAG is here, the rest of the root is not.
    file_root = add(mine, content / "big.bin")
    held = mine.stats().blocks
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([peer]))
        report = await exchange.fetch_dag(root, timeout=10)
    assert mine.has(file_root)
    assert report.blocks_present == held
    assert report.blocks_fetched == theirs.stats().blocks - held


async def test_listing_fetches_the_directory_and_each_entrys_first_block_only(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    content = make_content(tmp_path / "content")
    root = add(theirs, content)
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([peer]))
        report = await exchange.fetch_listing(root, timeout=10)
    # The root, big.bin's root and sub's block: not big.bin's chunks nor sub's entries.
    assert report.blocks_fetched == 3 < theirs.stats().blocks
    assert [(e.name, e.kind.value, e.size) for e in ls(mine, root)] == [
        ("big.bin", "file", 300_000),
        ("sub", "directory", 0),
    ]


async def test_listing_a_sharded_directory_fetches_its_shards(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    content = tmp_path / "many"
    content.mkdir()
    for i in range(300):
        (content / f"entry-{i:03}.txt").write_bytes(os.urandom(5000))
    with theirs.batch() as sink:
        root = (
            Importer(sink, ImportOptions(chunk_size=1024, shard_threshold=1000))
            .add_path(content)
            .cid
        )
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([peer]))
        await exchange.fetch_listing(root, timeout=10)
    entries = ls(mine, root)
    assert len(entries) == 300 and {e.size for e in entries} == {5000}
    # Each file's chunks stayed on the other member.
    assert mine.stats().blocks < theirs.stats().blocks - 300 * 4


async def test_a_damaged_block_is_refused_counted_and_fetched_from_another_member(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    root = add(theirs, make_content(tmp_path / "content"))
    bad_node, good_node, me = cluster.node(), cluster.node(), cluster.node()
    async with AsyncExitStack() as stack:
        bad = await stack.enter_async_context(serving(bad_node, FlippingStore(theirs, root)))
        good = await stack.enter_async_context(serving(good_node, theirs))
        client = await stack.enter_async_context(BlockClient(me.files))
        exchange = BlockExchange(mine, client, StaticFinder([bad, good]))
        await exchange.fetch_dag(root, timeout=10)
        assert exchange.refused == {bad_node.node_id: 1}
        assert mine.get(root) == theirs.get(root)

        # With only the damaged copy in the cluster, the block is never stored.
        with Blockstore(tmp_path / "c") as fresh:
            only_bad = BlockExchange(fresh, client, StaticFinder([bad]), retry_interval=0.05)
            with pytest.raises(BlockNotFound) as caught:
                await only_bad.fetch_dag(root, timeout=0.5)
            assert not fresh.has(root)
            assert only_bad.refused[bad_node.node_id] >= 1
    assert caught.value.cid == str(root)


async def test_a_cid_no_member_has_is_not_found_in_the_cluster(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    absent = Importer(None).add_bytes(b"nobody has this").cid
    peer_node, me = cluster.node(), cluster.node()
    # An unreachable member is skipped like one that lacks the block.
    gone = BlockPeer(cluster.node().node_id, "127.0.0.1:1")
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([gone, peer]), retry_interval=0.05)
        with pytest.raises(BlockNotFound) as caught:
            await exchange.fetch_dag(absent, timeout=0.5)
    assert "not found in the cluster after" in caught.value.message
    assert caught.value.cid == str(absent)
    # One member could not be asked: it may hold it, so another node may yet find it.
    assert "1 member(s) could not be asked" in caught.value.message
    assert NOT_IN_CLUSTER not in caught.value.details


async def test_a_cid_every_member_says_it_lacks_is_flagged_as_in_no_node(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    absent = Importer(None).add_bytes(b"nobody has this either").cid
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        exchange = BlockExchange(mine, client, StaticFinder([peer]), retry_interval=0.05)
        with pytest.raises(BlockNotFound) as caught:
            await exchange.fetch_dag(absent, timeout=0.5)
        # The ipfs source says so too, in the words a job's failure shows.
        (tmp_path / "input").mkdir()
        source = IPFSSource(mine, fetcher=exchange, timeout=0.5)
        with pytest.raises(BlockNotFound) as failed:
            await source.prepare(SpecConfig("ipfs", {"CID": str(absent)}), tmp_path / "input")
    assert caught.value.details[NOT_IN_CLUSTER] == "true"
    assert "could not be asked" not in caught.value.message
    assert failed.value.details[NOT_IN_CLUSTER] == "true"
    assert "every member of the cluster was asked" in failed.value.message


async def test_the_ipfs_source_reads_missing_content_through_the_exchange(
    tmp_path: Path, cluster: Cluster, stores: tuple[Blockstore, Blockstore]
) -> None:
    mine, theirs = stores
    root = add(theirs, make_content(tmp_path / "content"))
    peer_node, me = cluster.node(), cluster.node()
    async with serving(peer_node, theirs) as peer, BlockClient(me.files) as client:
        (tmp_path / "input").mkdir()
        source = IPFSSource(mine, fetcher=BlockExchange(mine, client, StaticFinder([peer])))
        prepared = await source.prepare(
            SpecConfig("ipfs", {"CID": f"{root}/sub"}), tmp_path / "input"
        )
    assert (prepared.path / "small.txt").read_text() == "hello\n"
