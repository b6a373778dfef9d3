"""The ipfs input source: content exported from the node's own blockstore by CID."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.errors import BlockNotFound, ExecutionFailed, InvalidCID
from bacalhau.models import SpecConfig
from bacalhau.storage import IPFSSource, parse_cid_path
from bacalhau.storage.cid import CID, Blockstore, Importer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Blockstore]:
    with Blockstore(tmp_path / "blocks") as bs:
        yield bs


def add(store: Blockstore, path: Path) -> str:
    with store.batch() as sink:
        return str(Importer(sink).add_path(path).cid)


def ipfs(cid: str) -> SpecConfig:
    return SpecConfig("ipfs", {"CID": cid})


@pytest.fixture
def content(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    (root / "sub").mkdir(parents=True)
    (root / "read_csv.py").write_text("print('hi')\n")
    (root / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return root


async def test_directory_and_sub_path(store: Blockstore, content: Path, tmp_path: Path) -> None:
    cid = add(store, content)
    (tmp_path / "a").mkdir()
    whole = await IPFSSource(store).prepare(ipfs(cid), tmp_path / "a")
    assert whole.read_only
    assert (whole.path / "read_csv.py").read_text() == "print('hi')\n"
    assert (whole.path / "sub" / "data.csv").read_text() == "a,b\n1,2\n"

    (tmp_path / "b").mkdir()
    one = await IPFSSource(store).prepare(ipfs(f"{cid}/sub/data.csv"), tmp_path / "b")
    assert one.path.is_file() and one.path.read_text() == "a,b\n1,2\n"


async def test_a_cid_no_node_has_is_not_found_in_the_cluster(
    store: Blockstore, tmp_path: Path
) -> None:
    absent = str(Importer(None).add_bytes(b"nobody stored this").cid)
    (tmp_path / "in").mkdir()
    with pytest.raises(BlockNotFound, match=rf"{absent} not found in the cluster after \d+ s"):
        await IPFSSource(store).prepare(ipfs(absent), tmp_path / "in")
    assert os.listdir(tmp_path / "in") == []


async def test_a_missing_path_inside_present_content(
    store: Blockstore, content: Path, tmp_path: Path
) -> None:
    cid = add(store, content)
    (tmp_path / "x").mkdir()
    with pytest.raises(ExecutionFailed, match="no entry 'nope'"):
        await IPFSSource(store).prepare(ipfs(f"{cid}/nope"), tmp_path / "x")


class OneBlockFromTheCluster:
    """A block fetcher standing in for the cluster: it holds blocks in another store."""

    def __init__(self, other: Blockstore, into: Blockstore) -> None:
        self.other, self.into, self.asked = other, into, 0

    async def fetch(self, cid: CID, *, timeout: float) -> bytes:
        self.asked += 1
        data = self.other.get(cid)
        self.into.put(cid, data)
        return data


async def test_missing_blocks_are_asked_of_the_injected_fetcher(
    store: Blockstore, content: Path, tmp_path: Path
) -> None:
    with Blockstore(tmp_path / "elsewhere") as other:
        cid = add(other, content)
        fetcher = OneBlockFromTheCluster(other, store)
        (tmp_path / "in").mkdir()
        prepared = await IPFSSource(store, fetcher=fetcher).prepare(ipfs(cid), tmp_path / "in")
    assert (prepared.path / "sub" / "data.csv").read_text() == "a,b\n1,2\n"
    assert fetcher.asked >= 3 and store.has(CID.parse(cid))


def test_cid_paths_parse_and_refuse_garbage() -> None:
    cid = "QmQPeNsJPyVWPFDVHb9Yd5VtLqFuZ8QhhNZuUYh4dcQPC2"
    assert parse_cid_path(f"/ipfs/{cid}/a/b") == (CID.parse(cid), "a/b")
    with pytest.raises(InvalidCID):
        parse_cid_path("not-a-cid")
