"""A WASM run's result folders are capped as a container's are: a module that writes past the
cap (the job's disk, or the operator's limit when smaller) fails saying so, keeps nothing of
its results, and leaves no filesystem mounted; a module within it keeps its files. Real
wasmtime, a real loop-mounted ext4 filesystem (root only, as for Docker's)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bacalhau.executor import InputMount, WasmExecutor
from bacalhau.models import Resources, ResultPath
from tests.executor.conftest import mounts_under, needs_root
from tests.executor.test_wasm import req

MiB = 1024 * 1024


@needs_root
@pytest.mark.parametrize("deterministic", [False, True])
async def test_a_module_writing_past_its_disk_fails_and_keeps_nothing(
    tmp_path: Path, module: Callable[[str], bytes], deterministic: bool
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "big").write_bytes(os.urandom(20 * MiB))
    (data / "small").write_bytes(b"x" * 1000)
    scratch = tmp_path / "scratch"
    executor = WasmExecutor(result_disk_limit=64 * MiB, scratch_dir=scratch)
    params = {"Deterministic": True} if deterministic else {}

    def run(*commands: str) -> object:
        return req(
            tmp_path,
            module("fsprobe"),
            params={"Parameters": list(commands), **params},
            inputs=[InputMount(source=data, target="/inputs")],
            result_paths=[ResultPath(name="out", path="/outputs")],
            resources=Resources(disk=8 * MiB),
        )

    over = run("copy:/inputs/big:/outputs/big")
    result = await executor.run(over)  # type: ignore[arg-type]
    assert result.error_msg.startswith("disk limit exceeded"), result
    assert "8.39MB" in result.error_msg  # the job's disk, smaller than the operator's cap
    assert list((over.results_dir / "out").iterdir()) == []  # type: ignore[attr-defined]
    assert mounts_under(scratch) == []

    within = run("copy:/inputs/small:/outputs/small")
    result = await executor.run(within)  # type: ignore[arg-type]
    assert (result.exit_code, result.error_msg) == (0, ""), result
    kept = within.results_dir / "out" / "small"  # type: ignore[attr-defined]
    assert kept.read_bytes() == b"x" * 1000
    assert mounts_under(scratch) == []
    await executor.close()
