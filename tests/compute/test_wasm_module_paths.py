"""A WASM job naming its module by a path among its inputs, as Bacalhau's own sample job
does (``testdata/jobs/wasm.yaml``: ``EntryModule: wasm.main``, the module an inline input
at ``/wasm.main`` whose base64 is broken over two lines), run through the real pipeline:
inputs prepared by the inline source, the module loaded and run by wasmtime."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from bacalhau.compute import ExecutionPipeline, ExecutionStore, LocalExecution, StorageInputs
from bacalhau.executor.wasm import WasmExecutor
from bacalhau.models import Execution, InputSource, LocalExecutionState, SpecConfig
from bacalhau.publisher import NoopPublisher
from bacalhau.storage import InlineSource
from tests.compute.jobs import make_execution
from tests.compute.wasm_jobs import module_url
from tests.executor.test_wasm import tar_gz_url

MODULE_URL = module_url("hello from a path")
MODULE = base64.b64decode(MODULE_URL.partition(",")[2])


def _inline(url: str, target: str) -> InputSource:
    """An inline input whose base64 is broken over two lines, as a module pasted into a YAML
    block is."""
    head, _, payload = url.partition(",")
    url = f"{head},{payload[:76]}\n{payload[76:]}"
    return InputSource(source=SpecConfig(type="inline", params={"URL": url}), target=target)


async def _run(tmp_path: Path, execution: Execution) -> LocalExecution:
    """Run ``execution`` through a pipeline preparing inline inputs and running WASM."""
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
        store.create(execution, requester_id="requester", state=LocalExecutionState.BID_ACCEPTED)
        try:
            return await pipeline.run(execution.id)
        finally:
            await executor.close()
            pipeline.close()


def _execution(entry: str, inputs: list[InputSource]) -> Execution:
    execution = make_execution(engine="wasm", params={"EntryModule": entry})
    assert execution.job is not None
    task = dataclasses.replace(execution.job.tasks[0], input_sources=inputs)
    return dataclasses.replace(execution, job=dataclasses.replace(execution.job, tasks=[task]))


@pytest.mark.parametrize(
    ("entry", "inputs"),
    [
        ("wasm.main", [_inline(MODULE_URL, "/wasm.main")]),
        ("/wasm.main", [_inline(MODULE_URL, "/wasm.main")]),
        (
            "inputs/lib/app.wasm",
            [_inline(tar_gz_url({"lib/app.wasm": MODULE, "data.txt": b"42"}), "/inputs")],
        ),
    ],
)
async def test_a_module_named_by_its_path_runs(
    tmp_path: Path, entry: str, inputs: list[InputSource]
) -> None:
    record = await _run(tmp_path, _execution(entry, inputs))
    assert record.state is LocalExecutionState.COMPLETED, record.message
    assert record.run_output is not None
    assert record.run_output.stdout == "hello from a path\n"


async def test_a_path_no_input_holds_fails_the_execution(tmp_path: Path) -> None:
    # Past the requester's check (a path under /inputs), but the archive has no such file.
    inputs = [_inline(tar_gz_url({"lib/app.wasm": MODULE}), "/inputs")]
    record = await _run(tmp_path, _execution("inputs/missing.wasm", inputs))
    assert record.state is LocalExecutionState.FAILED
    assert "cannot read the prepared entry module" in record.message
