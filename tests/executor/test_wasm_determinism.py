"""Deterministic WASM runs: the same job gives byte-identical results on any executor.

``ambient.wasm`` (scripts/wasm/ambient.c) prints both clocks, a sleep's effect on them, random
bytes, its arguments and its environment: everything a module could tell runs apart by.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bacalhau.errors import ExecutionTimeout
from bacalhau.executor import RunRequest, WasmExecutor
from bacalhau.executor.wasm._determinism import EPOCH_NS, STEP_NS, DeterministicSource
from tests.executor.test_wasm import req


@pytest.fixture
def ambient(wasm_modules: Path) -> bytes:
    return (wasm_modules / "ambient.wasm").read_bytes()


def ambient_request(
    tmp_path: Path, wasm: bytes, *, job_id: str, deterministic: bool, **params: Any
) -> RunRequest:
    request = req(
        tmp_path,
        wasm,
        params={
            "Deterministic": deterministic,
            "Parameters": ["one"],
            "EnvironmentVariables": {"ZETA": "z", "ALPHA": "a"},
            **params,
        },
        env={"MIDDLE": "m"},
    )
    return dataclasses.replace(request, job_id=job_id)


async def run_on_fresh_executors(
    tmp_path: Path, wasm: bytes, job_id: str, *, deterministic: bool, times: int = 3
) -> list[bytes]:
    """Run the job ``times`` times, each on an executor of its own (as on separate nodes)."""
    outputs = []
    for _ in range(times):
        request = ambient_request(tmp_path, wasm, job_id=job_id, deterministic=deterministic)
        async with WasmExecutor() as executor:
            result = await executor.run(request)
        assert (result.exit_code, result.error_msg) == (0, "")
        outputs.append((request.results_dir / "stdout").read_bytes())
    return outputs


async def test_same_job_gives_byte_identical_stdout_on_three_executors(
    tmp_path: Path, ambient: bytes
) -> None:
    outputs = await run_on_fresh_executors(tmp_path, ambient, "j-same", deterministic=True)
    assert outputs[0] == outputs[1] == outputs[2]


async def test_without_determinism_runs_differ(tmp_path: Path, ambient: bytes) -> None:
    outputs = await run_on_fresh_executors(tmp_path, ambient, "j-same", deterministic=False)
    randoms = {line for out in outputs for line in out.splitlines() if line.startswith(b"random=")}
    assert len(randoms) == 3


async def test_another_job_gets_another_random_stream(tmp_path: Path, ambient: bytes) -> None:
    async with WasmExecutor() as executor:
        results = [
            await executor.run(
                ambient_request(tmp_path, ambient, job_id=job_id, deterministic=True)
            )
            for job_id in ("j-first", "j-second")
        ]
    first, second = (_lines(r.stdout) for r in results)
    assert first["random"] != second["random"]
    assert first["realtime"] == second["realtime"]  # the clocks do not depend on the job


async def test_clocks_start_at_a_fixed_instant_and_step_per_read(
    tmp_path: Path, ambient: bytes
) -> None:
    async with WasmExecutor() as executor:
        result = await executor.run(
            ambient_request(tmp_path, ambient, job_id="j-clock", deterministic=True)
        )
    lines = result.stdout.splitlines()
    # realtime, monotonic, realtime: one step per read, one virtual clock behind all of them.
    assert lines[0] == f"realtime={EPOCH_NS // 10**9}.000000000"
    assert lines[1] == f"monotonic=0.{STEP_NS:09d}"
    assert lines[2] == f"realtime={EPOCH_NS // 10**9}.{2 * STEP_NS:09d}"
    # The 5 ms nanosleep took no real time but moved the clock past its end.
    assert _seconds(lines[3].split("=")[1]) >= 3 * STEP_NS + 5_000_000


async def test_env_is_only_the_jobs_in_sorted_order(
    tmp_path: Path, ambient: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_SECRET", "must not leak")
    async with WasmExecutor() as executor:
        result = await executor.run(
            ambient_request(tmp_path, ambient, job_id="j-env", deterministic=True)
        )
    env = [line for line in result.stdout.splitlines() if line.startswith("env ")]
    assert env == ["env ALPHA=a", "env MIDDLE=m", "env ZETA=z"]


async def test_a_long_sleep_takes_no_real_time(tmp_path: Path, wasm_modules: Path) -> None:
    sleeper = (wasm_modules / "sleeper.wasm").read_bytes()
    request = req(
        tmp_path, sleeper, params={"Deterministic": True, "Parameters": ["3600"]}, timeout=10.0
    )
    async with WasmExecutor() as executor:
        result = await executor.run(request)
    assert result.stdout == "sleeping 3600\nwoke up\n"


def test_random_stream_is_the_same_however_it_is_read() -> None:
    one, other = DeterministicSource(b"seed"), DeterministicSource(b"seed")
    whole = one.random_bytes(100)
    assert other.random_bytes(7) + other.random_bytes(40) + other.random_bytes(53) == whole
    assert DeterministicSource(b"other seed").random_bytes(100) != whole


def _lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def _seconds(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**9 + int(frac)


async def test_a_looping_deterministic_module_is_stopped_at_its_timeout(
    tmp_path: Path, wasm_modules: Path
) -> None:
    busyloop = (wasm_modules / "busyloop.wasm").read_bytes()
    request = req(tmp_path, busyloop, params={"Deterministic": True}, timeout=0.3)
    async with WasmExecutor() as executor:
        with pytest.raises(ExecutionTimeout):
            await executor.run(request)
