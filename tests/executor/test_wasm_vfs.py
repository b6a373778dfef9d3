"""A deterministic WASM run's file system: nothing of the host's copy reaches the module.

``fsprobe.wasm`` (scripts/wasm/fsprobe.c) lists directories recursively with every entry's
``stat`` (inode, device, size, link count, times) and ``d_ino``, writes, renames and removes
files, and prints the errno of whatever fails. Two copies of the same input made differently
(other inode numbers, times, creation order, so other host listing orders) must print the same
bytes, including what the module wrote.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.executor import InputMount, RunRequest, WasmExecutor
from bacalhau.executor.wasm._output_times import FIXED_TIME_NS
from bacalhau.models import ResultPath
from tests.executor.test_wasm import req

NAMES = ["zeta", "alpha", "b10", "b2", "Mid"]
#: Enough entries that wasi-libc's 4 KiB readdir buffer needs several calls (and cookies).
MANY = [f"entry-with-a-long-name-{i:03d}" for i in range(150)]
FIXED = f"{FIXED_TIME_NS // 10**9}.000000000"
WRITES = [
    "mkdir:/outputs/d",
    "write:/outputs/d/b",
    "sleep:5",
    "write:/outputs/a",
    "append:/outputs/a",
    "rename:/outputs/d/b:/outputs/c",
    "write:/outputs/d/b",
    "tree:/outputs",
    "tree:/inputs",
]


@pytest.fixture
def fsprobe(wasm_modules: Path) -> bytes:
    return (wasm_modules / "fsprobe.wasm").read_bytes()


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A directory on a tmpfs, which lists entries newest first (so creation order shows)."""
    root = Path("/dev/shm")
    if not (root.is_dir() and os.access(root, os.W_OK)):
        pytest.skip("no writable tmpfs at /dev/shm")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        yield Path(tmp)


def make_inputs(root: Path, order: list[str], mtime_s: int) -> Path:
    """The same tree each time, its entries created in ``order`` and given ``mtime_s``."""
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "many").mkdir()
    for name in order:
        (root / name).write_text(f"content of {name}\n")
        (root / "sub" / name).write_text(name)
    for name in MANY if order == NAMES else MANY[::-1]:
        (root / "many" / name).write_text(name)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime_s, mtime_s))
    return root


def probe_request(
    tmp_path: Path, wasm: bytes, inputs: Path, *args: str, **params: object
) -> RunRequest:
    request = req(
        tmp_path,
        wasm,
        params={"Parameters": list(args), **params},
        inputs=[InputMount(source=inputs, target="/inputs")],
        result_paths=[ResultPath(name="outputs", path="/outputs")],
    )
    return dataclasses.replace(request, job_id="j-vfs")


async def run(request: RunRequest) -> str:
    async with WasmExecutor() as executor:
        result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (0, "")
    return (request.results_dir / "stdout").read_text()


async def test_differently_made_copies_of_an_input_print_the_same_bytes(
    tmp_path: Path, shm_dir: Path, fsprobe: bytes
) -> None:
    first = make_inputs(shm_dir / "node-a" / "in", NAMES, 1_600_000_000)
    second = make_inputs(tmp_path / "elsewhere" / "b" / "in", NAMES[::-1], 1_700_000_123)
    third = make_inputs(shm_dir / "node-c" / "in", NAMES[::-1], 1_650_000_000)
    # The hosts disagree: other listing orders and inode numbers.
    assert os.listdir(first / "sub") != os.listdir(third / "sub")
    assert (first / "alpha").stat().st_ino != (third / "alpha").stat().st_ino
    requests = [
        probe_request(tmp_path, fsprobe, inputs, *WRITES, Deterministic=True)
        for inputs in (first, second, third)
    ]
    outputs = [await run(r) for r in requests]
    assert outputs[0] == outputs[1] == outputs[2]
    # Listed in name order (by bytes: upper case first), "." and ".." first.
    listed = re.findall(r"^/inputs lists (\S+)", outputs[0], re.MULTILINE)
    assert listed == [".", "..", *sorted([*NAMES, "many", "sub"])]
    assert re.findall(r"^/inputs/many lists (\S+)", outputs[0], re.MULTILINE) == [
        ".",
        "..",
        *MANY,
    ]
    # Every input carries the fixed instant; d_ino and stat agree.
    for line in re.findall(r"^/inputs/\S+ file .*$", outputs[0], re.MULTILINE):
        assert f"atime={FIXED} mtime={FIXED} ctime={FIXED}" in line
        assert " dev=2 " in line and " nlink=1 " in line
    for name, d_ino in re.findall(r"^/inputs/sub lists (\w+) d_ino=(\d+)", outputs[0], re.M):
        assert f"/inputs/sub/{name} file ino={d_ino} " in outputs[0]
    # The written files are the same on the host, with the fixed instant there.
    for request in requests:
        folder = request.results_dir / "outputs"
        assert (folder / "a").read_text() == "written to /outputs/a\n" * 2
        assert (folder / "c").stat().st_mtime_ns == FIXED_TIME_NS


async def test_writes_carry_the_virtual_time_and_renames_keep_the_inode(
    tmp_path: Path, fsprobe: bytes
) -> None:
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    out = await run(probe_request(tmp_path, fsprobe, inputs, *WRITES, Deterministic=True))
    stats = dict(re.findall(r"^(/outputs\S*) ((?:dir|file) .*)$", out, re.MULTILINE))
    # Written before the 5 ms sleep: the start instant; after it: 5 ms later.
    assert f"mtime={FIXED}" in stats["/outputs/c"]
    assert f"mtime={FIXED_TIME_NS // 10**9}.005000000" in stats["/outputs/a"]
    # /outputs/d/b was renamed to /outputs/c: it kept its inode; the new d/b has another.
    ino = {path: s.split(" ino=")[1].split()[0] for path, s in stats.items()}
    assert ino["/outputs/c"] != ino["/outputs/d/b"]
    assert int(ino["/outputs/c"]) == (1 << 63) + 2  # the second entry the run created
    assert " dev=1 " in stats["/outputs"]


async def test_errors_inside_the_module(tmp_path: Path, fsprobe: bytes) -> None:
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    os.symlink("/etc/passwd", inputs / "absolute")
    os.symlink("../../..", inputs / "sub" / "climb")
    os.symlink("alpha", inputs / "sub" / "inside")
    out = await run(
        probe_request(
            tmp_path,
            fsprobe,
            inputs,
            "write:/inputs/new",
            "openw:/inputs/alpha",
            "append:/inputs/alpha",
            "unlink:/inputs/alpha",
            "mkdir:/inputs/dir",
            "rename:/outputs/x:/inputs/x",
            "read:/inputs/../etc/passwd",
            "read:/inputs/absolute",
            "read:/inputs/sub/climb/etc/passwd",
            "read:/inputs/sub/inside",
            "read:/inputs/missing",
            "read:/inputs/alpha/",
            "mkdir:/outputs/d",
            "mkdir:/outputs/d",
            "write:/outputs/d/f",
            "rmdir:/outputs/d",
            "unlink:/outputs/d",
            "symlink:alpha:/outputs/link",
            "readlink:/inputs/sub/climb",
            Deterministic=True,
        )
    )
    assert out.splitlines() == [
        "write:/inputs/new EROFS",
        "openw:/inputs/alpha EROFS",
        "append:/inputs/alpha EROFS",
        "unlink:/inputs/alpha EROFS",
        "mkdir:/inputs/dir EROFS",
        "rename:/outputs/x EROFS",
        "read:/inputs/../etc/passwd ENOTCAPABLE",
        "read:/inputs/absolute ENOTCAPABLE",
        "read:/inputs/sub/climb/etc/passwd ENOTCAPABLE",
        "read:/inputs/sub/inside 5",
        "read:/inputs/missing ENOENT",
        "read:/inputs/alpha/ ENOTDIR",
        "mkdir:/outputs/d ok",
        "mkdir:/outputs/d EEXIST",
        "rmdir:/outputs/d ENOTEMPTY",
        "unlink:/outputs/d EISDIR",
        "symlink:alpha EPERM",
        "readlink:/inputs/sub/climb ../../..",
    ]
    assert sorted(os.listdir(inputs)) == sorted([*NAMES, "absolute", "many", "sub"])


async def test_a_standard_run_keeps_wasmtimes_view_of_the_host(
    tmp_path: Path, fsprobe: bytes
) -> None:
    inputs = make_inputs(tmp_path / "in", NAMES, 1_600_000_000)
    out = await run(probe_request(tmp_path, fsprobe, inputs, "tree:/inputs/sub"))
    assert "mtime=1600000000.000000000" in out
    assert f"mtime={FIXED}" not in out
