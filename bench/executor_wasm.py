"""WASM executor overhead on a cached module against bare wasmtime.

Prints one JSON object: the median wall time of a whole job through ``WasmExecutor.run`` (a
fresh results directory, WASI context, instantiate, run, results files) for a module already
compiled, next to instantiate + run of the same pre-linked module with wasmtime directly, and
the one-off compile time.

    python bench/executor_wasm.py [--runs N] [--module NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
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

from bacalhau.executor import RunRequest, WasmExecutor  # noqa: E402
from bacalhau.models import SpecConfig  # noqa: E402


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--module", default="exitcode")
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
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
