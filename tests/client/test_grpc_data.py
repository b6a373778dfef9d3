"""The public gRPC API's DataService and the SDK's gRPC data calls: content added, got back
and listed as through REST (the same CIDs, the same files), a job's IPFS and URL results
downloaded by ``AsyncGrpcClient.download_results``, and each refusal with its status, code
and field."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
import pytest

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import ApiServer, GrpcApiServer
from bacalhau.client import (
    AsyncClient,
    AsyncDataClient,
    AsyncGrpcClient,
    AsyncGrpcDataClient,
    content_cid,
)
from bacalhau.errors import BlockNotFound, InvalidContent, RequestTooLarge, Unavailable
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import CID, DAG_PB, Blockstore, CarReader, Importer
from bacalhau.storage.cid._dagpb import DataType, encode_node, encode_unixfs
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_data_api import files, tree
from tests.client.test_download import ResultServer, job_with_results, results_server, tarball
from tests.client.test_download_cid import publish

__all__ = ["results_server"]  # a fixture, used below

UPLOAD_LIMIT = 2**20


@dataclass
class Apis:
    rest: str
    grpc: str
    store: Blockstore


@pytest.fixture
async def apis(orch: MemoryOrchestrator, tmp_path: Path) -> AsyncIterator[Apis]:
    """One requester's REST and gRPC APIs over one blockstore."""
    with Blockstore(tmp_path / "requester-blocks") as store:
        content = BlockstoreContent(store)
        async with (
            ApiServer(orch, host="127.0.0.1", port=0, content=content) as rest,
            GrpcApiServer(
                orch, host="127.0.0.1", port=0, content=content, max_upload=UPLOAD_LIMIT
            ) as grpc_api,
        ):
            yield Apis(rest.url, grpc_api.address, store)


@pytest.mark.parametrize("version", [0, 1])
async def test_add_get_and_ls_as_through_rest(apis: Apis, tmp_path: Path, version: int) -> None:
    src = tree(tmp_path / "src")
    async with AsyncGrpcDataClient(apis.grpc) as data, AsyncDataClient(apis.rest) as rest:
        cid = await data.add(src, cid_version=version)
        assert cid == content_cid(src, cid_version=version)
        assert apis.store.is_pinned(CID.parse(cid))
        got = await data.get(cid, tmp_path / "out")
        assert got == tmp_path / "out" / cid
        assert files(got) == files(src)
        assert await data.ls(cid) == await rest.ls(cid)
        assert [e.name for e in await data.ls(f"{cid}/sub")] == ["empty", "naïve.txt"]
        car = await data.get(cid, tmp_path / "car", car=True)
        with car.open("rb") as fh:
            assert [str(r) for r in CarReader(fh).roots] == [cid]
        # A path inside: named by its last name, as `ipfs get` does.
        inside = await data.get(f"{cid}/sub/naïve.txt", tmp_path / "inside")
        assert inside.read_text() == "hello\n"


async def test_only_hash_uploads_nothing(apis: Apis, tmp_path: Path) -> None:
    src = tree(tmp_path / "src")
    async with AsyncGrpcDataClient(apis.grpc) as data:
        assert await data.add(src, only_hash=True) == content_cid(src)
    assert apis.store.stats().blocks == 0


async def test_ipfs_and_url_results_download_through_the_grpc_client(
    apis: Apis, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    big = os.urandom(600_000)  # several chunks: a multi-block file
    ipfs = publish(
        apis.store,
        tmp_path / "r1",
        {"stdout": b"one\n", "stderr": b"", "exitCode": b"0", "outputs/big.bin": big},
    )
    results_server.files["e-2.tar.gz"] = tarball(
        {"stdout": b"two\n", "stderr": b"", "exitCode": b"0", "outputs/b.txt": b"b"}
    )
    async with AsyncClient(apis.rest) as rest, AsyncGrpcClient(apis.grpc) as client:
        job_id = await job_with_results(orch, rest, ipfs, results_server.spec("e-2.tar.gz"))
        merged = (await client.download_results(job_id, tmp_path / "merged")).path
        assert (merged / "stdout").read_text() == "one\ntwo\n"
        assert (merged / "outputs" / "big.bin").read_bytes() == big
        assert (merged / "outputs" / "b.txt").read_text() == "b"
        assert not (merged / "raw").exists()
        # The same as the REST client gives.
        again = (await rest.download_results(job_id, tmp_path / "rest")).path
        assert files(again) == files(merged)


async def status_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if hasattr(call, "__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                pass
        else:
            await call  # type: ignore[misc]
    return caught.value


def trailer(err: grpc.aio.AioRpcError, key: str) -> str:
    return str(dict(err.trailing_metadata() or ()).get(key, ""))


async def test_refusals_have_their_status_code_and_field(apis: Apis) -> None:
    absent = str(Importer(None).add_bytes(b"nobody has this").cid)
    async with grpc.aio.insecure_channel(apis.grpc) as channel:
        data = api_pb2_grpc.DataServiceStub(channel)
        cases = [
            (data.GetData(api_pb2.GetDataRequest()), grpc.StatusCode.INVALID_ARGUMENT, "cid"),
            (data.ListData(api_pb2.ListDataRequest()), grpc.StatusCode.INVALID_ARGUMENT, "cid"),
            (
                data.GetData(api_pb2.GetDataRequest(cid=absent, format="zip")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "format",
            ),
            (
                data.GetData(api_pb2.GetDataRequest(cid="not-a-cid")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "cid",
            ),
            (data.GetData(api_pb2.GetDataRequest(cid=absent)), grpc.StatusCode.NOT_FOUND, ""),
            (data.ListData(api_pb2.ListDataRequest(cid=absent)), grpc.StatusCode.NOT_FOUND, ""),
        ]
        for call, code, field in cases:
            err = await status_of(call)
            assert err.code() == code, err.details()
            assert trailer(err, "bacalhau-error-code"), err.trailing_metadata()
            assert trailer(err, "bacalhau-error-field") == field


async def test_uploads_over_the_limit_or_not_a_car_are_refused_and_pin_nothing(
    apis: Apis, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * UPLOAD_LIMIT))
    async with AsyncGrpcDataClient(apis.grpc) as data:
        with pytest.raises(RequestTooLarge) as caught:
            await data.add(tmp_path / "big.bin")
        assert caught.value.field == "chunk"
        assert "data_upload_max_bytes" in (caught.value.hint or "")
    async with grpc.aio.insecure_channel(apis.grpc) as channel:
        put = api_pb2_grpc.DataServiceStub(channel).PutData
        err = await status_of(put(iter([api_pb2.PutDataRequest(chunk=b"not a CAR")])))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert trailer(err, "bacalhau-error-code") == InvalidContent.code
    assert apis.store.pins() == []


async def test_content_damaged_past_the_first_bytes_ends_unavailable(
    apis: Apis, tmp_path: Path
) -> None:
    """The first chunks are sent before the damage shows: the call must end with an error,
    not as if the content were whole, and the client keeps nothing of it."""
    block = encode_node([], encode_unixfs(DataType.FILE, data=b"abc", filesize=10_000))
    damaged = CID.for_block(block, codec=DAG_PB, version=1)  # declares more than it holds
    apis.store.put(damaged, block)
    async with AsyncGrpcDataClient(apis.grpc) as data:
        with pytest.raises(Unavailable, match="could not be sent whole"):
            await asyncio.wait_for(data.get(str(damaged), tmp_path / "out"), 10)
        with pytest.raises(BlockNotFound):
            await data.get(str(Importer(None).add_bytes(b"absent").cid), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def _writer_threads() -> int:
    """Threads now writing content for a download (in the API's producer)."""
    count = 0
    for frame in sys._current_frames().values():
        f: FrameType | None = frame
        while f is not None:
            if f.f_code.co_name == "produce" and f.f_code.co_filename.endswith("_content.py"):
                count += 1
                break
            f = f.f_back
    return count


async def test_a_client_leaving_early_stops_the_writer(apis: Apis, tmp_path: Path) -> None:
    """A download abandoned after its first chunk does not keep a thread writing the rest
    into a queue nobody reads."""
    (tmp_path / "huge.bin").write_bytes(os.urandom(24 * 2**20))
    with apis.store.batch() as sink:
        root = Importer(sink).add_path(tmp_path / "huge.bin")
    async with grpc.aio.insecure_channel(apis.grpc) as channel:
        data = api_pb2_grpc.DataServiceStub(channel)
        call = data.GetData(api_pb2.GetDataRequest(cid=str(root.cid)))
        first = await call.read()
        assert isinstance(first, api_pb2.GetDataResponse) and first.chunk
        assert _writer_threads() == 1  # blocked on the full queue
        call.cancel()
    for _ in range(100):
        if _writer_threads() == 0:
            break
        await asyncio.sleep(0.05)
    assert _writer_threads() == 0, "the writer thread still runs after the client left"
