"""A deterministic WASM run sees its inputs through a staged copy: fixed file times and
directory listings in name order, whatever the host's copy looked like, so the same job over
the same inputs staged at two different times and paths prints the same ``stat`` and listing.

``fsview.wasm`` (scripts/wasm/fsview.c) lists directories recursively and prints each entry's
``stat``. What wasmtime still shows of the host (inode numbers, ctime, what the module writes
during the run) is masked here and asserted apart, as the executor's docstring says.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from bacalhau.executor import InputMount, RunRequest, WasmExecutor
from bacalhau.executor.wasm._staging import FIXED_TIME_NS
from bacalhau.models import ResultPath
from tests.executor.test_wasm import req

NAMES = ["zeta", "alpha", "b10", "b2", "Mid"]
FIXED = f"{FIXED_TIME_NS // 10**9}.000000000"
#: Fields wasmtime takes from the host that staging cannot fix.
_HOST_FIELDS = re.compile(r"\b(ino|d_ino|ctime)=[0-9.]+")


def make_inputs(root: Path, order: list[str], mtime_s: int) -> Path:
    """The same tree each time, its entries created in ``order`` and given ``mtime_s``."""
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    for name in order:
        (root / name).write_text(f"content of {name}\n")
        (root / "sub" / name).write_text(name)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime_s, mtime_s))
    return root


def fsview_request(tmp_path: Path, wasm: bytes, inputs: Path, **params: object) -> RunRequest:
    request = req(
        tmp_path,
        wasm,
        params={"Parameters": ["/inputs", "/outputs"], **params},
        inputs=[InputMount(source=inputs, target="/inputs")],
        result_paths=[ResultPath(name="outputs", path="/outputs")],
    )
    return dataclasses.replace(request, job_id="j-staged")


async def run(request: RunRequest) -> str:
    async with WasmExecutor() as executor:
        result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (0, "")
    return (request.results_dir / "stdout").read_text()


@pytest.fixture
def fsview(wasm_modules: Path) -> bytes:
    return (wasm_modules / "fsview.wasm").read_bytes()


async def test_inputs_staged_at_two_times_and_paths_print_the_same(
    tmp_path: Path, fsview: bytes
) -> None:
    first = make_inputs(tmp_path / "node-a" / "in", NAMES, 1_600_000_000)
    second = make_inputs(tmp_path / "elsewhere" / "b" / "in", NAMES[::-1], 1_700_000_123)
    outputs = [
        await run(fsview_request(tmp_path, fsview, inputs, Deterministic=True))
        for inputs in (first, second)
    ]
    masked = [_HOST_FIELDS.sub(r"\1=?", out) for out in outputs]
    assert masked[0] == masked[1]
    # Listed in name order (by bytes: upper case first), every time fixed.
    listed = re.findall(r"^/inputs lists (\S+)", outputs[0], re.MULTILINE)
    assert listed == sorted([*NAMES, "sub"])
    assert re.findall(r"^/inputs/sub lists (\S+)", outputs[0], re.MULTILINE) == sorted(NAMES)
    assert outputs[0].count(f"mtime={FIXED}") == len(NAMES) * 2 + 3  # two dirs, the output
    assert outputs[0].count(f"atime={FIXED}") == len(NAMES) * 2 + 3
    # What remains: inode numbers derive from the host's; ctime is when the copy was made.
    assert _HOST_FIELDS.findall(outputs[0])
    assert "ctime=946684800." not in outputs[0]


async def test_a_standard_run_sees_the_host_copy_as_it_is(tmp_path: Path, fsview: bytes) -> None:
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    out = await run(fsview_request(tmp_path, fsview, inputs))
    assert "mtime=1600000000.000000000" in out
    assert f"mtime={FIXED}" not in out


async def test_outputs_carry_the_fixed_time_after_a_deterministic_run(
    tmp_path: Path, fsview: bytes
) -> None:
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    request = fsview_request(
        tmp_path, fsview, inputs, Deterministic=True, Parameters=["+/outputs/new.txt"]
    )
    await run(request)
    written = request.results_dir / "outputs" / "new.txt"
    for path in (written, written.parent):  # before reading: that would set the atime
        assert (path.stat().st_mtime_ns, path.stat().st_atime_ns) == (FIXED_TIME_NS,) * 2
    assert written.read_text() == "written\n"
    # The input the module saw was a copy: the host's own keeps its times.
    assert (inputs / "alpha").stat().st_mtime_ns == 1_600_000_000 * 10**9


async def test_the_staged_copy_is_removed_when_the_run_ends(tmp_path: Path, fsview: bytes) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    request = fsview_request(tmp_path, fsview, inputs, Deterministic=True)
    async with WasmExecutor(staging_root=staging) as executor:
        result = await executor.run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").read_text().count("mtime=946684800.") > 10
    assert list(staging.iterdir()) == []
