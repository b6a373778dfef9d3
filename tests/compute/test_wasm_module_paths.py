"""A WASM job naming its module by a path among its inputs, as Bacalhau's own sample job
does (``testdata/jobs/wasm.yaml``: ``EntryModule: wasm.main``, the module an inline input
at ``/wasm.main`` whose base64 is broken over two lines), run through the real pipeline:
inputs prepared by the inline source, the module loaded and run by wasmtime."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import tarfile
from pathlib import Path

import pytest

from bacalhau.compute import ExecutionPipeline, ExecutionStore, StorageInputs
from bacalhau.executor.wasm import WasmExecutor
from bacalhau.models import Execution, InputSource, LocalExecutionState, SpecConfig
from bacalhau.publisher import NoopPublisher
from bacalhau.storage import InlineSource
from tests.compute.jobs import make_execution
from tests.compute.wasm_jobs import module_url

MODULE = base64.b64decode(module_url("hello from a path").partition(",")[2])


def _inline(data: bytes, target: str, *, media: str = "application/wasm") -> InputSource:
    encoded = base64.b64encode(data).decode()
    # Broken over two lines, as a module pasted into a YAML block is.
    url = f"data:{media};base64,{encoded[:76]}\n{encoded[76:]}"
    return InputSource(source=SpecConfig(type="inline", params={"URL": url}), target=target)


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _execution(entry: str, inputs: list[InputSource]) -> Execution:
    execution = make_execution(engine="wasm", params={"EntryModule": entry})
    task = dataclasses.replace(execution.job.tasks[0], input_sources=inputs)
    return dataclasses.replace(execution, job=dataclasses.replace(execution.job, tasks=[task]))


@pytest.mark.parametrize(
    ("entry", "inputs"),
    [
        ("wasm.main", [_inline(MODULE, "/wasm.main")]),
        ("/wasm.main", [_inline(MODULE, "/wasm.main")]),
        (
            "inputs/lib/app.wasm",
            [
                _inline(
                    _tar_gz({"lib/app.wasm": MODULE, "data.txt": b"42"}),
                    "/inputs",
                    media="application/gzip",
                )
            ],
        ),
    ],
)
async def test_a_module_named_by_its_path_runs(
    tmp_path: Path, entry: str, inputs: list[InputSource]
) -> None:
    executor = WasmExecutor()
    with ExecutionStore(tmp_path / "compute.db") as store:
        pipeline = ExecutionPipeline(
            node_id="compute-node",
            store=store,
            executors={"wasm": executor},
            publishers={"": NoopPublisher()},
            results_root=tmp_path / "executions",
            inputs=StorageInputs({"inline": InlineSource()}),
        )
        execution = _execution(entry, inputs)
        store.create(execution, requester_id="requester", state=LocalExecutionState.BID_ACCEPTED)
        try:
            record = await pipeline.run(execution.id)
        finally:
            await executor.close()
            pipeline.close()
    assert record.state is LocalExecutionState.COMPLETED, record.message
    assert record.run_output is not None
    assert record.run_output.stdout == "hello from a path\n"


async def test_a_path_no_input_holds_fails_the_execution_naming_the_mounts(
    tmp_path: Path,
) -> None:
    executor = WasmExecutor()
    with ExecutionStore(tmp_path / "compute.db") as store:
        pipeline = ExecutionPipeline(
            node_id="compute-node",
            store=store,
            executors={"wasm": executor},
            publishers={"": NoopPublisher()},
            results_root=tmp_path / "executions",
            inputs=StorageInputs({"inline": InlineSource()}),
        )
        # Past the requester's check (a path under /inputs), but the archive has no such file.
        execution = _execution(
            "inputs/missing.wasm",
            [_inline(_tar_gz({"lib/app.wasm": MODULE}), "/inputs", media="application/gzip")],
        )
        store.create(execution, requester_id="requester", state=LocalExecutionState.BID_ACCEPTED)
        try:
            record = await pipeline.run(execution.id)
        finally:
            await executor.close()
            pipeline.close()
    assert record.state is LocalExecutionState.FAILED
    assert "cannot read the prepared entry module" in record.message
