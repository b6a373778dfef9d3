"""Stopping WASM runs for real: a cancelled, expired or closed run frees its worker thread at
once, whether the module spins in WebAssembly or sleeps inside WASI's ``poll_oneoff``; and
a run's output streams are capped like a container's."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from bacalhau.errors import ExecutionCancelled, ExecutionTimeout
from bacalhau.executor import WasmExecutor
from bacalhau.models import RUN_OUTPUT_LIMIT, Resources
from tests.executor.test_wasm import req

#: Sleeps until 200 ms past the monotonic clock's reading, through one absolute-time clock
#: subscription; exits 0 if it slept that long and got its one event back, 3 otherwise.
ABSOLUTE_SLEEP_WAT = """
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $now (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $now (i32.const 1) (i64.const 0) (i32.const 0)))
    (i64.store (i32.const 64) (i64.const 7))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (i64.add (i64.load (i32.const 0)) (i64.const 200000000)))
    (i32.store16 (i32.const 104) (i32.const 1))
    (if (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 8))
      (then (call $exit (i32.const 2))))
    (drop (call $now (i32.const 1) (i64.const 0) (i32.const 16)))
    (if (i32.and
          (i32.and
            (i64.ge_u (i64.sub (i64.load (i32.const 16)) (i64.load (i32.const 0)))
                      (i64.const 190000000))
            (i32.eq (i32.load (i32.const 8)) (i32.const 1)))
          (i64.eq (i64.load (i32.const 128)) (i64.const 7)))
      (then (call $exit (i32.const 0))))
    (call $exit (i32.const 3))))
"""

#: Bound for "at once": the epoch ticks every 10 ms and a sleep wakes on the cancel itself.
PROMPTLY = 1.0


def _has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def _started(path: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while not _has(path, text):
        assert time.monotonic() < deadline, f"{path} never contained {text!r}"
        await asyncio.sleep(0.01)


async def _workers_idle(executor: WasmExecutor, within: float) -> None:
    deadline = time.monotonic() + within
    while executor.busy_workers:
        assert time.monotonic() < deadline, "a worker thread is still inside the module"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("name", "says"), [("sleeper", "sleeping 60"), ("busyloop", "spinning")])
async def test_cancel_frees_the_worker_of_a_sleeping_or_spinning_module(
    tmp_path: Path, module: Any, name: str, says: str
) -> None:
    executor = WasmExecutor()
    request = req(tmp_path, module(name), params={"Parameters": ["60"]})
    run = asyncio.ensure_future(executor.run(request))
    await _started(request.results_dir / "stdout", says)
    await executor.cancel(request.execution_id)
    with pytest.raises(ExecutionCancelled):
        await run
    await _workers_idle(executor, PROMPTLY)
    await executor.close()


async def test_timeout_frees_the_worker_of_a_sleeping_module(tmp_path: Path, module: Any) -> None:
    executor = WasmExecutor()
    request = req(tmp_path, module("sleeper"), params={"Parameters": ["60"]}, timeout=0.2)
    with pytest.raises(ExecutionTimeout):
        await executor.run(request)
    await _workers_idle(executor, PROMPTLY)
    await executor.close()


async def test_close_stops_every_run_and_their_workers(tmp_path: Path, module: Any) -> None:
    executor = WasmExecutor()
    sleeping = req(tmp_path, module("sleeper"), params={"Parameters": ["60"]})
    spinning = req(tmp_path, module("busyloop"))
    runs = [asyncio.ensure_future(executor.run(r)) for r in (sleeping, spinning)]
    await _started(sleeping.results_dir / "stdout", "sleeping 60")
    await _started(spinning.results_dir / "stdout", "spinning")
    await asyncio.wait_for(executor.close(), PROMPTLY)
    assert executor.busy_workers == 0
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    assert all(isinstance(o, ExecutionCancelled) for o in outcomes), outcomes


async def test_absolute_monotonic_sleep_waits_its_time(tmp_path: Path) -> None:
    executor = WasmExecutor()
    result = await executor.run(req(tmp_path, wasmtime.wat2wasm(ABSOLUTE_SLEEP_WAT), timeout=10))
    assert result.exit_code == 0
    await executor.close()


async def test_streams_are_capped_and_the_drop_reported(
    tmp_path: Path, module: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cap = RUN_OUTPUT_LIMIT + 100
    executor = WasmExecutor(max_stream_bytes=cap)
    request = req(tmp_path, module("hello"), params={"Parameters": ["x" * 5000]})
    with caplog.at_level(logging.WARNING):
        result = await executor.run(request)
    assert result.exit_code == 0
    head = b"hello from wasm\narg[1]="
    stdout = (request.results_dir / "stdout").read_bytes()
    assert stdout == head + b"x" * (cap - len(head))
    assert result.stdout_truncated
    # Under the cap, a stream is whole and not reported.
    assert (request.results_dir / "stderr").read_text() == "hello on stderr\n"
    assert not result.stderr_truncated
    dropped = [r for r in caplog.records if "dropped (stdout, stderr)" in r.getMessage()]
    assert len(dropped) == 1
    written = len(head) + 5000 + 1
    assert f"(stdout, stderr) = ({written - cap}, 0)" in dropped[0].getMessage()
    await executor.close()


async def test_the_streams_are_capped_at_the_disk_the_job_asked_for(
    tmp_path: Path, module: Any
) -> None:
    """A job that asked for less disk than the node's stream limit keeps that much of each
    stream (they are files on the node's disk, as its results are)."""
    executor = WasmExecutor()
    cap = RUN_OUTPUT_LIMIT + 100
    request = req(
        tmp_path,
        module("hello"),
        params={"Parameters": ["x" * 5000]},
        resources=Resources(disk=cap),
    )
    result = await executor.run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").stat().st_size == cap
    assert result.stdout_truncated
    await executor.close()
