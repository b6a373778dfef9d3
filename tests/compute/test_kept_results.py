"""A short execution's results kept by the node's store, in the commit of its end, instead of
archived at publish time: the real pipeline, WASM executor, store and result server. The
published address downloads the archive of the results, whose CID is the one published; a
store opened again still serves it; once housekeeping forgets the execution, it is gone."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import aiohttp

from bacalhau.compute import ExecutionPipeline, ExecutionStore, StorageInputs
from bacalhau.executor.wasm import WasmExecutor
from bacalhau.models import LocalExecutionState, SpecConfig
from bacalhau.publisher import LocalResultServer, decode_kept
from bacalhau.storage.cid import Importer
from tests.compute.jobs import make_execution
from tests.compute.wasm_jobs import module_url

L = LocalExecutionState


async def _download(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.read() if r.status == 200 else b""


def _extract(data: bytes, into: Path) -> dict[str, bytes]:
    into.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")
    return {p.name: p.read_bytes() for p in into.iterdir()}


def _serve_store(server: LocalResultServer, store: ExecutionStore) -> None:
    def source(execution_id: str) -> object:
        data = store.kept_results(execution_id)
        return decode_kept(data) if data is not None else None

    server.serve_kept(source)  # type: ignore[arg-type]


async def test_short_results_are_kept_with_the_end_and_archived_when_downloaded(
    tmp_path: Path,
) -> None:
    module = {"Source": {"Type": "inline", "Params": {"URL": module_url("hello")}}}
    execution = make_execution(engine="wasm", params={"EntryModule": module}, publisher="local")
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        with ExecutionStore(tmp_path / "compute.db") as store:
            _serve_store(server, store)
            pipeline = ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors={"wasm": WasmExecutor()},
                publishers={"local": server.publisher()},
                results_root=tmp_path / "executions",
                inputs=StorageInputs({}),
            )
            store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
            record = await pipeline.run(execution.id)
            await asyncio.sleep(0)  # the folder is given back after the outcome
            await pipeline.executors["wasm"].close()  # type: ignore[attr-defined]
            pipeline.close()
            assert record.state is L.COMPLETED, record.message
            published = record.published_result
            assert isinstance(published, SpecConfig) and published.type == "urlDownload"
            # Kept by the store, not archived: no row in the archive store, no file.
            assert store.kept_results(execution.id) is not None
            assert server.archives.get(f"{execution.id}.tar.gz") is None
            assert not any((tmp_path / "published").glob("*.tar.gz"))
            # The folder went to a later execution: the store is all there is.
            assert not (tmp_path / "executions" / execution.id).exists()
            archive = await _download(published.params["URL"])
        output = record.run_output
        assert output is not None
        files = _extract(archive, tmp_path / "downloaded")
        assert files == {
            "stdout": output.stdout.encode(),
            "stderr": output.stderr.encode(),
            "exitCode": b"0",
        }
        # What was downloaded is what the CID says.
        assert str(Importer(None).add_path(tmp_path / "downloaded").cid) == published.params["CID"]
        server.serve_kept(None)

        # A node started again serves it from its store, until housekeeping forgets it.
        with ExecutionStore(tmp_path / "compute.db") as store:
            _serve_store(server, store)
            assert await _download(published.params["URL"]) == archive
            # (Forgotten once its callbacks went out.)
            store.delete_callbacks([e.seq for e in store.pending_callbacks("requester")])
            assert store.prune(finished_before_ns=record.modify_time + 1) == [execution.id]
            assert store.kept_results(execution.id) is None
            assert await _download(published.params["URL"]) == b""
            server.serve_kept(None)
