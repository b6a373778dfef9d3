"""``/api/v1/data`` through the SDK's data client: content added by CID (computed on the
client, uploaded as a CAR, verified and pinned by the requester), got back as files or as a
CAR, listed; incomplete or oversized uploads refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bacalhau.api import ApiServer
from bacalhau.client import AsyncDataClient, content_cid
from bacalhau.errors import BlockNotFound, InvalidContent, InvalidRequest, Unavailable
from bacalhau.orchestrator import OrchestratorAPI
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import CID, DAG_PB, Blockstore, CarReader, Importer
from bacalhau.storage.cid._car import encode_header
from bacalhau.storage.cid._cid import encode_varint
from bacalhau.storage.cid._dagpb import DataType, encode_node, encode_unixfs
from tests.api.memory_orchestrator import MemoryOrchestrator


@pytest.fixture
def store(tmp_path: Path) -> Blockstore:
    return Blockstore(tmp_path / "requester-blocks")


@pytest.fixture
async def client(store: Blockstore) -> AsyncIterator[AsyncDataClient]:
    api: OrchestratorAPI = MemoryOrchestrator()
    content = BlockstoreContent(store)
    server = ApiServer(api, host="127.0.0.1", port=0, content=content, max_upload=2**20)
    async with server as srv, AsyncDataClient(srv.url) as data:
        yield data
    store.close()


def tree(root: Path) -> Path:
    (root / "sub" / "empty").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "naïve.txt").write_text("hello\n")
    return root


def files(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("version", [0, 1])
async def test_add_get_and_ls_round_trip(
    tmp_path: Path, client: AsyncDataClient, store: Blockstore, version: int
) -> None:
    src = tree(tmp_path / "src")
    cid = await client.add(src, cid_version=version)
    assert cid == content_cid(src, cid_version=version)
    assert store.is_pinned(CID.parse(cid))

    got = await client.get(cid, tmp_path / "out")
    assert got == tmp_path / "out" / cid
    assert files(got) == files(src)

    car = await client.get(cid, tmp_path / "cars", car=True)
    with car.open("rb") as fh:
        assert [str(r) for r in CarReader(fh).roots] == [cid]

    entries = await client.ls(cid)
    assert [(e.name, e.type) for e in entries] == [("a.bin", "file"), ("sub", "directory")]
    assert entries[0].size == 300_000


async def test_a_path_inside_a_directory_is_listed_and_got_by_its_last_name(
    tmp_path: Path, client: AsyncDataClient
) -> None:
    src = tree(tmp_path / "src")
    cid = await client.add(src)

    entries_of_root = {e.name: e.cid for e in await client.ls(cid)}
    entries = await client.ls(f"{cid}/sub")
    assert [(e.name, e.type) for e in entries] == [("empty", "directory"), ("naïve.txt", "file")]
    assert [e.name for e in await client.ls(f"/ipfs/{cid}/sub/naïve.txt")] == [""]

    folder = await client.get(f"{cid}/sub", tmp_path / "out")
    assert folder == tmp_path / "out" / "sub"
    assert files(folder) == files(src / "sub")
    one = await client.get(f"ipfs://{cid}/sub/naïve.txt", tmp_path / "one")
    assert one == tmp_path / "one" / "naïve.txt" and one.read_text() == "hello\n"
    car = await client.get(f"{cid}/sub", tmp_path / "cars", car=True)
    assert car.name == f"{entries_of_root['sub']}.car"

    with pytest.raises(BlockNotFound) as missing:
        await client.ls(f"{cid}/sub/nope")
    assert "no entry 'nope'" in missing.value.message
    assert "bacalhau data ls" in (missing.value.hint or "")
    with pytest.raises(BlockNotFound, match="is not a directory"):
        await client.get(f"{cid}/a.bin/x", tmp_path / "out2")
    with pytest.raises(InvalidRequest, match=r"must not contain '\.' or '\.\.'"):
        await client.ls(f"{cid}/../sub")


async def test_content_damaged_past_the_first_bytes_cuts_the_download_short(
    tmp_path: Path, client: AsyncDataClient, store: Blockstore
) -> None:
    """The answer's status is sent before the damage shows: the client must see the
    download cut, not wait for the rest."""
    block = encode_node([], encode_unixfs(DataType.FILE, data=b"abc", filesize=10_000))
    damaged = CID.for_block(block, codec=DAG_PB, version=1)  # declares more than it holds
    store.put(damaged, block)
    with pytest.raises(Unavailable, match="cut short"):
        await asyncio.wait_for(client.get(str(damaged), tmp_path / "out"), 10)
    assert list((tmp_path / "out").iterdir()) == []


async def test_only_hash_uploads_nothing(
    tmp_path: Path, client: AsyncDataClient, store: Blockstore
) -> None:
    src = tree(tmp_path / "src")
    cid = await client.add(src, only_hash=True)
    assert cid == content_cid(src)
    assert store.stats().blocks == 0


async def test_a_single_file_comes_back_under_its_cid(
    tmp_path: Path, client: AsyncDataClient
) -> None:
    (tmp_path / "f.txt").write_text("just a file\n")
    cid = await client.add(tmp_path / "f.txt")
    got = await client.get(cid, tmp_path / "out")
    assert got.read_text() == "just a file\n"


async def test_a_car_without_all_its_blocks_is_refused_and_nothing_pinned(
    tmp_path: Path, client: AsyncDataClient, store: Blockstore
) -> None:
    with Blockstore(tmp_path / "elsewhere") as other:
        root = Importer(other).add_bytes(os.urandom(600_000)).cid  # a root and 3 leaves
        # The header and the root block only.
        header = encode_header([root])
        block = root.binary + other.get(root)
        partial = encode_varint(len(header)) + header + encode_varint(len(block)) + block
    url = client.base_url + "/api/v1/data"
    async with aiohttp.ClientSession() as session, session.put(url, data=partial) as resp:
        body = await resp.json()
    assert resp.status == InvalidContent.http_status
    assert body["Code"] == InvalidContent.code
    assert not store.is_pinned(root)


async def test_an_upload_over_the_limit_is_refused(
    tmp_path: Path, client: AsyncDataClient, store: Blockstore
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * 2**20))
    with pytest.raises(InvalidRequest):
        await client.add(tmp_path / "big.bin")
    assert store.pins() == []


async def test_an_unknown_cid_is_not_found(tmp_path: Path, client: AsyncDataClient) -> None:
    absent = str(Importer(None).add_bytes(b"nobody has this").cid)
    with pytest.raises(BlockNotFound):
        await client.get(absent, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no partial download left behind
    with pytest.raises(BlockNotFound):
        await client.ls(absent)
