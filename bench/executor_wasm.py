"""WASM executor overhead on a cached module against bare wasmtime.

Prints one JSON object: the median wall time of a whole job through ``WasmExecutor.run`` (a
fresh results directory, WASI context, instantiate, run, results files) for a module already
compiled, next to instantiate + run of the same pre-linked module with wasmtime directly, and
the one-off compile time; then the file I/O of a job that copies a 10 MB input to its
results, run deterministically (every read and write a Python host call of the virtual file
system) and in standard mode (wasmtime's own WASI), in 1 MiB and 4 KiB blocks.

    python bench/executor_wasm.py [--runs N] [--module NAME] [--io-runs N] [--io-mb N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bacalhau.executor import InputMount, RunRequest, WasmExecutor  # noqa: E402
from bacalhau.models import ResultPath, SpecConfig  # noqa: E402

_IO_BLOCKS = {"1MiB": 1 << 20, "4KiB": 4096}


def _build_modules() -> None:
    subprocess.run([str(ROOT / "scripts" / "build_wasm.sh")], check=True)


def _bare_run(pre: wasmtime.InstancePre, engine: wasmtime.Engine, out: Path) -> float:
    started = time.perf_counter()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 62)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["main.wasm", "0"]
    wasi.stdout_file = str(out)
    store.set_wasi(wasi)
    instance = pre.instantiate(store)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    start(store)
    return time.perf_counter() - started


async def _copy_job(
    executor: WasmExecutor, url: str, inputs: Path, results: Path, block: int, deterministic: bool
) -> float:
    """Seconds of one job copying /inputs/big to /outputs/big in ``block``-byte calls."""
    execution_id = f"e-{uuid.uuid4()}"
    request = RunRequest(
        execution_id=execution_id,
        job_id="j-bench-io",
        engine=SpecConfig(
            "wasm",
            {
                "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}},
                "Parameters": [f"copy:/inputs/big:/outputs/big:{block}"],
                "Deterministic": deterministic,
            },
        ),
        results_dir=results / execution_id,
        inputs=[InputMount(source=inputs, target="/inputs")],
        result_paths=[ResultPath(name="outputs", path="/outputs")],
    )
    t = time.perf_counter()
    result = await executor.run(request)
    elapsed = time.perf_counter() - t
    copied = (request.results_dir / "outputs" / "big").stat().st_size
    assert result.exit_code == 0 and copied == (inputs / "big").stat().st_size, result
    return elapsed


async def _file_io(runs: int, megabytes: int) -> dict[str, object]:
    wasm = (ROOT / ".build" / "wasm" / "fsprobe.wasm").read_bytes()
    url = "data:application/wasm;base64," + base64.b64encode(wasm).decode()
    size = megabytes * 1_000_000
    figures: dict[str, object] = {"input_bytes": size, "runs": runs}
    async with WasmExecutor() as executor:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = Path(tmp) / "inputs"
            inputs.mkdir()
            (inputs / "big").write_bytes(os.urandom(size))
            for label, block in _IO_BLOCKS.items():
                for mode, deterministic in (("deterministic", True), ("standard", False)):
                    await _copy_job(executor, url, inputs, Path(tmp), block, deterministic)
                    times = [
                        await _copy_job(executor, url, inputs, Path(tmp), block, deterministic)
                        for _ in range(runs)
                    ]
                    median = statistics.median(times)
                    figures[f"{mode}_{label}_median_ms"] = round(median * 1e3, 1)
                    figures[f"{mode}_{label}_mb_per_s"] = round(2 * size / median / 1e6, 1)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--module", default="exitcode")
    parser.add_argument("--io-runs", type=int, default=5)
    parser.add_argument("--io-mb", type=int, default=10)
    args = parser.parse_args()
    await asyncio.to_thread(_build_modules)
    wasm = (ROOT / ".build" / "wasm" / f"{args.module}.wasm").read_bytes()
    url = "data:application/wasm;base64," + base64.b64encode(wasm).decode()
    engine_spec = SpecConfig(
        "wasm",
        {
            "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}},
            "Parameters": ["0"],
        },
    )
    executor = WasmExecutor()
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    started = time.perf_counter()
    module = wasmtime.Module(engine, wasm)
    compile_s = time.perf_counter() - started
    pre = linker.instantiate_pre(module)
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        await executor.validate(engine_spec)  # compiles once: every timed run is a cache hit
        for _ in range(args.runs):
            execution_id = f"e-{uuid.uuid4()}"
            request = RunRequest(
                execution_id=execution_id,
                job_id="j-bench",
                engine=engine_spec,
                results_dir=results / execution_id,
            )
            t = time.perf_counter()
            await executor.run(request)
            ours.append(time.perf_counter() - t)
            bare.append(_bare_run(pre, engine, results / f"{execution_id}.bare"))
    stats = executor.cache_stats()
    await executor.close()
    file_io = await _file_io(args.io_runs, args.io_mb)
    print(
        json.dumps(
            {
                "benchmark": "executor_wasm",
                "module": args.module,
                "module_bytes": len(wasm),
                "runs": args.runs,
                "executor_median_ms": round(statistics.median(ours) * 1e3, 3),
                "bare_instantiate_run_median_ms": round(statistics.median(bare) * 1e3, 3),
                "overhead_median_ms": round(
                    (statistics.median(ours) - statistics.median(bare)) * 1e3, 3
                ),
                "compile_once_ms": round(compile_s * 1e3, 3),
                "cache_hits": stats.hits,
                "cache_misses": stats.misses,
                "file_io_copy": file_io,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
