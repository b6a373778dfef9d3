"""The WASM section of ``bench/executors.py``: executor overhead over bare wasmtime.

For each module, a compiled module is run three ways, interleaved so all see the same load:

- ``bare``: wasmtime directly: a store, a WASI context writing stdout to a file, instantiate
  the pre-linked module, call ``_start`` (the floor any executor pays);
- ``executor``: ``WasmExecutor.run`` of an inline module already in its cache (results
  directory, capped streams, epoch deadline, result files);
- ``executor_deterministic``: the same with ``Deterministic: true`` (virtual clocks and the
  seeded random stream, through host functions).

Modules: ``exitcode`` (exits at once: the fixed cost of a job) and ``ambient`` (reads the
clocks, sleeps, draws random bytes: the cost of the deterministic host functions).

``executors.py`` imports :func:`wasm_section`; run alone it prints the section:

    python bench/_wasm_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import wasmtime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bacalhau.executor import RunRequest, WasmExecutor  # noqa: E402
from bacalhau.models import SpecConfig  # noqa: E402

#: Module name -> its arguments.
MODULES = {"exitcode": ["0"], "ambient": ["x"]}
DEFAULT_RUNS = 200


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def _bare_run(
    pre: wasmtime.InstancePre, engine: wasmtime.Engine, argv: list[str], out: Path
) -> float:
    started = time.perf_counter()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 62)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["main.wasm", *argv]
    wasi.stdout_file = str(out)
    store.set_wasi(wasi)
    instance = pre.instantiate(store)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    with contextlib.suppress(wasmtime.ExitTrap):  # proc_exit(0): a C program's normal end
        start(store)
    return time.perf_counter() - started


async def _executor_run(executor: WasmExecutor, spec: SpecConfig, results: Path) -> float:
    execution_id = f"e-{uuid.uuid4()}"
    request = RunRequest(
        execution_id=execution_id,
        job_id="j-bench",
        engine=spec,
        results_dir=results / execution_id,
    )
    started = time.perf_counter()
    result = await executor.run(request)
    elapsed = time.perf_counter() - started
    if result.error_msg:
        raise RuntimeError(f"the benchmark job failed: {result.error_msg}")
    return elapsed


async def _module_figures(name: str, runs: int, results: Path) -> dict[str, Any]:
    wasm = (ROOT / ".build" / "wasm" / f"{name}.wasm").read_bytes()
    argv = MODULES[name]
    url = "data:application/wasm;base64," + base64.b64encode(wasm).decode()
    params: dict[str, Any] = {
        "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}},
        "Parameters": argv,
    }
    plain = SpecConfig("wasm", params)
    deterministic = SpecConfig("wasm", {**params, "Deterministic": True})
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(wasmtime.Module(engine, wasm))
    times: dict[str, list[float]] = {"bare": [], "executor": [], "executor_deterministic": []}
    async with WasmExecutor() as executor:
        await executor.validate(plain)  # compiled once: every timed run is a cache hit
        for _ in range(3):  # warm-up: threads, page cache, the first store
            await _executor_run(executor, deterministic, results)
        for i in range(runs):
            times["bare"].append(_bare_run(pre, engine, argv, results / f"bare-{i}"))
            times["executor"].append(await _executor_run(executor, plain, results))
            times["executor_deterministic"].append(
                await _executor_run(executor, deterministic, results)
            )
    medians = {way: statistics.median(values) for way, values in times.items()}
    return {
        "module_bytes": len(wasm),
        "runs": runs,
        **{f"{way}_median_ms": _ms(m) for way, m in medians.items()},
        "overhead_median_ms": _ms(medians["executor"] - medians["bare"]),
        "deterministic_extra_median_ms": _ms(
            medians["executor_deterministic"] - medians["executor"]
        ),
    }


async def wasm_section(args: argparse.Namespace) -> dict[str, Any]:
    """Figures of the WASM executor against bare wasmtime (``args.wasm_runs`` rounds, if set)."""
    runs = int(getattr(args, "wasm_runs", 0) or DEFAULT_RUNS)
    await asyncio.to_thread(subprocess.run, [str(ROOT / "scripts" / "build_wasm.sh")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        return {name: await _module_figures(name, runs, Path(tmp)) for name in MODULES}


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", dest="wasm_runs", type=int, default=DEFAULT_RUNS)
    args = parser.parse_args()
    print(json.dumps({"benchmark": "executors", "wasm": await wasm_section(args)}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
