"""A WASM run's stream files, whatever its results folder holds already: the empty files of
a folder made ahead are written as they are, anything else in them is cut first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.executor import EXIT_CODE_FILE, STDERR_FILE, STDOUT_FILE
from bacalhau.executor.wasm import WasmExecutor
from tests.executor.test_wasm import req


@pytest.mark.parametrize("stale", [b"", b"x" * 10_000], ids=["empty", "stale"])
async def test_a_run_writes_its_own_streams_over_what_its_folder_holds(
    tmp_path: Path, wasm_modules: Path, stale: bytes
) -> None:
    request = req(tmp_path, (wasm_modules / "hello.wasm").read_bytes())
    request.results_dir.mkdir()
    for name in (STDOUT_FILE, STDERR_FILE, EXIT_CODE_FILE):
        (request.results_dir / name).write_bytes(stale)
    async with WasmExecutor() as executor:
        result = await executor.run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").read_text() == result.stdout
    assert (request.results_dir / "stderr").read_text() == "hello on stderr\n"
    assert (request.results_dir / "exitCode").read_bytes() == b"0"
    assert os.stat(request.results_dir / "stdout").st_size == len(result.stdout.encode())
