"""Preparing all of a job's inputs: one folder each, the failing input named, WASM file inputs
handed over as directories."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionFailed
from bacalhau.models import InputSource, Job, SpecConfig, Task
from bacalhau.storage import (
    InlineSource,
    LocalDirectorySource,
    StorageSource,
    UrlDownloadSource,
    prepare_inputs,
)


def inline(data: bytes, target: str, alias: str = "") -> InputSource:
    url = "data:text/plain;base64," + base64.b64encode(data).decode()
    return InputSource(SpecConfig("inline", {"URL": url}), alias=alias, target=target)


def job(engine: str, *inputs: InputSource, **params: object) -> Job:
    spec = SpecConfig(engine, {"Image": "x"} if engine == "docker" else dict(params))
    return Job(id="j-1", tasks=[Task(name="main", engine=spec, input_sources=list(inputs))])


SOURCES: dict[str, StorageSource] = {
    "inline": InlineSource(),
    "urldownload": UrlDownloadSource(max_retries=0, timeout=5),
}


async def test_each_input_in_its_own_folder(tmp_path: Path) -> None:
    prepared = await prepare_inputs(
        SOURCES, job("docker", inline(b"a", "/in/a"), inline(b"b", "/in/b")), tmp_path
    )
    assert [(p.target, p.path.read_bytes()) for p in prepared] == [("/in/a", b"a"), ("/in/b", b"b")]
    assert sorted(os.listdir(tmp_path)) == ["0", "1"]


async def test_the_failing_input_is_named(tmp_path: Path) -> None:
    bad = InputSource(
        SpecConfig("urlDownload", {"URL": "http://127.0.0.1:9/data.csv"}),
        alias="sales",
        target="/in/url",
    )
    with pytest.raises(ExecutionFailed, match=r"^input sales: downloading http://127.0.0.1:9/"):
        await prepare_inputs(SOURCES, job("docker", inline(b"a", "/in/a"), bad), tmp_path)


async def test_a_missing_plugin_fails_before_any_work(tmp_path: Path) -> None:
    s3 = InputSource(SpecConfig("s3", {"Bucket": "b"}), target="/in/s3")
    with pytest.raises(ExecutionFailed, match="does not have the 's3' input source"):
        await prepare_inputs(SOURCES, job("docker", inline(b"a", "/a"), s3), tmp_path)
    assert os.listdir(tmp_path) == []


async def test_wasm_file_inputs_become_directories_at_the_targets_parent(tmp_path: Path) -> None:
    module = inline(b"\0asm", "/app/main.wasm")
    data = inline(b"hello", "/data/foo.txt", alias="foo")
    [mod, prepared] = await prepare_inputs(
        SOURCES, job("wasm", module, data, EntryModule="/app/main.wasm"), tmp_path
    )
    # The module stays a file (the executor loads it); the data is a folder at /data.
    assert mod.target == "/app/main.wasm" and mod.path.is_file()
    assert prepared.target == "/data" and prepared.alias == "foo" and prepared.read_only
    assert (prepared.path / "foo.txt").read_bytes() == b"hello"


async def test_a_local_file_is_given_to_a_wasm_module_linked_never_moved(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f.txt").write_bytes(b"host")
    (shared / "rw.txt").write_bytes(b"host")
    sources = {**SOURCES, "localdirectory": LocalDirectorySource([f"{shared}:rw"])}

    def local(name: str, target: str, **params: object) -> InputSource:
        spec = SpecConfig("localDirectory", {"SourcePath": str(shared / name), **params})
        return InputSource(spec, target=target)

    module = inline(b"\0asm", "/app/main.wasm")
    spec = job(
        "wasm",
        module,
        local("f.txt", "/f.txt"),
        local("rw.txt", "/out/rw.txt", ReadWrite=True),
        EntryModule="/app/main.wasm",
    )
    (tmp_path / "work").mkdir()
    [_, ro, rw] = await prepare_inputs(sources, spec, tmp_path / "work")

    assert ro.target == "/" and ro.read_only and (ro.path / "f.txt").read_bytes() == b"host"
    assert rw.target == "/out" and not rw.read_only
    # The host's file itself (one inode): what the module writes, the host file holds.
    (rw.path / "rw.txt").write_bytes(b"written")
    assert (shared / "rw.txt").read_bytes() == b"written"
    assert (shared / "f.txt").exists()  # linked, not moved away from the host
