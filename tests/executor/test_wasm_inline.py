"""Short WASM runs on the event loop's thread: which runs take it, and how one that overruns
its slice (or would sleep) gives it back and runs again, whole, on a worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import wasmtime
from prometheus_client import REGISTRY

from bacalhau.errors import ExecutionTimeout
from bacalhau.executor import InputMount, WasmExecutor
from bacalhau.executor.wasm._inline import InlineRunStats
from bacalhau.models import ResultPath
from tests.executor.test_wasm import req

T = TypeVar("T")

# Prints "start", spins (argc - 1) * 6e9 times without a host call (about two seconds per
# argument here; only an epoch tick can stop it), then prints "end".
SPIN_WAT = """
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "start\\n")
  (data (i32.const 80) "end\\n")
  (func $say (param $at i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $at))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (local $n i64)
    (call $say (i32.const 64) (i32.const 6))
    (drop (call $args (i32.const 0) (i32.const 4)))
    (local.set $n (i64.mul (i64.extend_i32_u (i32.sub (i32.load (i32.const 0)) (i32.const 1)))
                           (i64.const 6000000000)))
    (block $done
      (loop $spin
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $spin)))
    (call $say (i32.const 80) (i32.const 4))))
"""
SPIN = wasmtime.wat2wasm(SPIN_WAT)


#: A slice far above a short run's CPU time, so that a loaded machine (the suite runs in
#: parallel) does not keep a short module on the workers: what is tested is the mechanism.
SLICE = 0.05


@pytest.fixture
def executor() -> WasmExecutor:
    return WasmExecutor(module_cache_size=8, inline_slice=SLICE)


async def longest_stall(work: Awaitable[T]) -> tuple[T, float]:
    """``work``'s result, and the longest the event loop went without running another task
    meanwhile (seconds)."""
    longest = 0.0
    done = False

    async def watch() -> None:
        nonlocal longest
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)  # the watcher starts before the work holds the loop
    try:
        result = await work
    finally:
        done = True
        await watcher
    return result, longest


async def test_a_module_runs_inline_once_a_run_on_a_worker_showed_it_short(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    first = await executor.run(req(tmp_path, module("hello")))
    assert executor.inline_stats() == InlineRunStats(inline=0, yielded=0)  # never seen: worker
    second = req(tmp_path, module("hello"))
    result = await executor.run(second)
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=0)
    # The same results, the same layout, whichever thread ran it.
    assert (result.exit_code, result.stdout, result.stderr) == (
        first.exit_code,
        first.stdout,
        first.stderr,
    )
    assert sorted(p.name for p in second.results_dir.iterdir()) == ["exitCode", "stderr", "stdout"]
    assert (second.results_dir / "stdout").read_text() == result.stdout


def _runs(where: str) -> float:
    return REGISTRY.get_sample_value("bacalhau_wasm_runs_total", {"where": where}) or 0.0


async def test_runs_are_counted_in_the_metrics_by_where_they_ran(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    worker, inline = _runs("worker"), _runs("inline")
    await executor.run(req(tmp_path, module("hello")))
    assert (_runs("worker") - worker, _runs("inline") - inline) == (1, 0)
    await executor.run(req(tmp_path, module("hello")))
    assert (_runs("worker") - worker, _runs("inline") - inline) == (1, 1)


@pytest.mark.parametrize("deterministic", [False, True])
async def test_an_overrun_yields_the_loop_and_runs_again_whole_on_a_worker(
    tmp_path: Path, executor: WasmExecutor, deterministic: bool
) -> None:
    params = {"Deterministic": deterministic}
    await executor.run(req(tmp_path, SPIN, params=params))  # no argument: no spin, short
    long = req(tmp_path, SPIN, params={**params, "Parameters": ["x"]})
    yields = REGISTRY.get_sample_value("bacalhau_wasm_inline_yields_total") or 0.0
    result, stall = await longest_stall(executor.run(long))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=1)
    assert REGISTRY.get_sample_value("bacalhau_wasm_inline_yields_total") == yields + 1
    # The first attempt's "start" is gone: the results are the second attempt's, whole.
    assert (result.exit_code, result.error_msg, result.stdout) == (0, "", "start\nend\n")
    assert (long.results_dir / "stdout").read_text() == "start\nend\n"
    # The spin takes seconds; the loop was held for a slice and a tick (bounded loosely here:
    # timings belong in benchmarks).
    assert stall < 1.0
    # It yielded once: it stays on the workers.
    await executor.run(req(tmp_path, SPIN, params=params))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=1)


async def test_a_run_about_to_sleep_yields_and_sleeps_on_a_worker(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    sleeper = module("sleeper")
    await executor.run(req(tmp_path, sleeper, params={"Parameters": ["0"]}))
    sleepy = req(tmp_path, sleeper, params={"Parameters": ["1"]})
    result, stall = await longest_stall(executor.run(sleepy))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=1)
    assert result.exit_code == 0
    assert result.stdout == "sleeping 1\nwoke up\n"  # said once: the first attempt's is gone
    assert stall < 0.5


async def test_a_deterministic_sleep_takes_no_time_and_stays_inline(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    sleeper = module("sleeper")
    params = {"Deterministic": True, "Parameters": ["3600"]}
    first = await executor.run(req(tmp_path, sleeper, params=params))
    second = await executor.run(req(tmp_path, sleeper, params=params))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=0)
    assert second.stdout == first.stdout == "sleeping 3600\nwoke up\n"


async def test_a_yielded_run_keeps_its_time_limit(tmp_path: Path, executor: WasmExecutor) -> None:
    await executor.run(req(tmp_path, SPIN))
    with pytest.raises(ExecutionTimeout):
        await executor.run(req(tmp_path, SPIN, params={"Parameters": ["x"]}, timeout=0.3))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=1)


async def test_no_inline_run_without_a_slice_or_with_data_inputs(
    tmp_path: Path, module: Any
) -> None:
    never = WasmExecutor(module_cache_size=8, inline_slice=0)
    for _ in range(3):
        assert (await never.run(req(tmp_path, module("hello")))).exit_code == 0
    assert never.inline_stats() == InlineRunStats(inline=0, yielded=0)

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    executor = WasmExecutor(module_cache_size=8, inline_slice=SLICE)
    for _ in range(3):
        request = req(tmp_path, module("hello"), inputs=[InputMount(source=data, target="/inputs")])
        assert (await executor.run(request)).exit_code == 0
    assert executor.inline_stats() == InlineRunStats(inline=0, yielded=0)


def test_a_negative_slice_is_refused() -> None:
    with pytest.raises(ValueError, match="slice"):
        WasmExecutor(inline_slice=-1)


@pytest.mark.parametrize("cap", [10, 5000, 1 << 20])
async def test_an_inline_run_keeps_its_streams_as_a_worker_does(
    tmp_path: Path, module: Any, cap: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Capped alike (the head of each stream, the rest dropped and said so) and summarised
    alike, with output below, across and above the summary's limit."""
    executor = WasmExecutor(module_cache_size=8, max_stream_bytes=cap, inline_slice=SLICE)
    long_arg = "x" * 6000  # the output crosses RUN_OUTPUT_LIMIT (2 KiB)
    results = []
    for _ in range(2):
        caplog.clear()
        request = req(tmp_path, module("hello"), params={"Parameters": [long_arg]})
        result = await executor.run(request)
        files = [(request.results_dir / name).read_bytes() for name in ("stdout", "stderr")]
        said = [m.split("; ")[-1] for m in caplog.messages if "dropped" in m]
        results.append((result.stdout, result.stderr, files, said))
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=0)
    assert results[1] == results[0]  # the worker's run, then the inline one
    stdout = f"hello from wasm\narg[1]={long_arg}\n".encode()
    assert results[0][2][0] == stdout[:cap]
    dropped = (max(len(stdout) - cap, 0), max(len(b"hello on stderr\n") - cap, 0))
    assert results[0][3] == ([f"dropped (stdout, stderr) = {dropped}"] if any(dropped) else [])


# Spins about 15 ms of CPU here, with no host call: longer than an epoch tick, well within a
# slice of 0.1 s.
SHORT_SPIN = wasmtime.wat2wasm("""
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i64)
    (local.set $n (i64.const 45000000))
    (block $done
      (loop $spin
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $spin)))))
""")


async def test_a_slow_preparation_does_not_count_against_the_slice(tmp_path: Path) -> None:
    """The slice bounds the module's run, not what precedes it: a run whose preparation alone
    outlasts the slice (here, thousands of result folders to make) and that sees an epoch
    tick still runs inline, and its module stays known as short."""
    executor = WasmExecutor(module_cache_size=8, inline_slice=0.1)
    await executor.run(req(tmp_path, SHORT_SPIN))  # on a worker: now known short
    many = [ResultPath(name=f"out{i}", path=f"/out{i}") for i in range(6000)]
    began = time.thread_time()
    result = await executor.run(req(tmp_path, SHORT_SPIN, result_paths=many))
    assert time.thread_time() - began > 0.1  # the preparation alone outlasts the slice
    assert (result.exit_code, result.error_msg) == (0, "")
    assert executor.inline_stats() == InlineRunStats(inline=1, yielded=0)
