"""``GET /api/v1/data/{cid}?format=tar`` never sends a member outside the archive's root:
content added by hand may hold entry names that climb (``..``), names given twice (a link and
a folder of one name would write through the link), or folders nested deeper than any export
goes. Each is refused with an error answer before the download starts, as compute nodes refuse
such content when they export it."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest

from bacalhau.api import ApiServer
from bacalhau.errors import InvalidContent, UnsafePath
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import CID, DAG_PB, MAX_DIR_DEPTH, Blockstore
from bacalhau.storage.cid._dagpb import DataType, PBLink, encode_node, encode_unixfs
from tests.api.memory_orchestrator import MemoryOrchestrator


def _put(store: Blockstore, links: Sequence[PBLink], data: bytes) -> CID:
    block = encode_node(links, data)
    cid = CID.for_block(block, codec=DAG_PB, version=1)
    store.put(cid, block)
    return cid


def _file(store: Blockstore, body: bytes) -> CID:
    return _put(store, [], encode_unixfs(DataType.FILE, data=body, filesize=len(body)))


def _symlink(store: Blockstore, target: bytes) -> CID:
    return _put(store, [], encode_unixfs(DataType.SYMLINK, data=target))


def _folder(store: Blockstore, entries: Sequence[tuple[bytes, CID]]) -> CID:
    links = [PBLink(cid, name, 1) for name, cid in entries]
    return _put(store, links, encode_unixfs(DataType.DIRECTORY))


@pytest.fixture
def store(tmp_path: Path) -> Blockstore:
    return Blockstore(tmp_path / "blocks")


@pytest.fixture
async def url(store: Blockstore) -> AsyncIterator[str]:
    server = ApiServer(
        MemoryOrchestrator(), host="127.0.0.1", port=0, content=BlockstoreContent(store)
    )
    async with server as srv:
        yield f"{srv.url}/api/v1/data"
    store.close()


async def _get_tar(url: str, cid: CID) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/{cid}", params={"format": "tar"}) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("name", [b"../../escaped.txt", b"a/b", b"..", b"."])
async def test_an_entry_name_that_climbs_or_nests_is_refused(
    url: str, store: Blockstore, name: bytes
) -> None:
    root = _folder(store, [(name, _file(store, b"owned\n"))])
    status, body = await _get_tar(url, root)
    assert (status, body["Code"]) == (UnsafePath.http_status, UnsafePath.code)
    assert "would escape its directory" in body["Message"]


async def test_a_name_given_twice_is_refused(url: str, store: Blockstore) -> None:
    # A link to a host folder, then a folder of the same name: extracting the second would
    # write through the first.
    inner = _folder(store, [(b"x.txt", _file(store, b"through the link\n"))])
    root = _folder(store, [(b"s", _symlink(store, b"/tmp/victim")), (b"s", inner)])
    status, body = await _get_tar(url, root)
    assert (status, body["Code"]) == (UnsafePath.http_status, UnsafePath.code)
    assert "appears twice" in body["Message"]


async def test_folders_nested_past_the_export_depth_are_refused_not_crashed(
    url: str, store: Blockstore
) -> None:
    cid = _file(store, b"deep\n")
    for _ in range(MAX_DIR_DEPTH + 1):
        cid = _folder(store, [(b"d", cid)])
    status, body = await _get_tar(url, cid)
    assert (status, body["Code"]) == (InvalidContent.http_status, InvalidContent.code)
    assert "nested too deep" in body["Message"]


async def test_safe_content_still_comes_back_whole(url: str, store: Blockstore) -> None:
    inner = _folder(store, [(b"b.txt", _file(store, b"b\n"))])
    root = _folder(store, [(b"a.txt", _file(store, b"a\n")), (b"sub", inner)])
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/{root}", params={"format": "tar"}) as resp,
    ):
        assert resp.status == 200
        body = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = tar.getnames()
    assert names == [str(root), f"{root}/a.txt", f"{root}/sub", f"{root}/sub/b.txt"]
