"""``job get``: results downloaded over real HTTP, extracted and merged per Bacalhau's rules."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.client import (
    AsyncClient,
    NoResults,
    ResultsConflict,
    SkipReason,
    UnsupportedResult,
)
from bacalhau.client._download import staging_folder
from bacalhau.errors import InternalError, Unavailable
from bacalhau.models import ResultPath, SpecConfig
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.client.test_client import docker_job


def tarball(
    files: dict[str, bytes], *, evil: str = "", links: dict[str, str] | None = None
) -> bytes:
    """A result archive: ``files`` by name, then symbolic links ``name -> target``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        if evil:
            info = tarfile.TarInfo(evil)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


class ResultServer:
    """A real HTTP server handing out result archives, like a local publisher."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[name], content_type="application/gzip")

    def spec(self, name: str) -> SpecConfig:
        return SpecConfig("urlDownload", {"URL": f"{self.url}/{name}"})


@pytest.fixture
async def results_server() -> AsyncIterator[ResultServer]:
    rs = ResultServer()
    app = web.Application()
    app.router.add_get("/{name}", rs.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rs.url = f"http://127.0.0.1:{port}"
    yield rs
    await runner.cleanup()


async def job_with_results(
    orch: MemoryOrchestrator, client: AsyncClient, *specs: SpecConfig
) -> str:
    sub = await client.submit(docker_job())
    for spec in specs:
        ex = await orch.start_execution(sub.job_id)
        await orch.complete_execution(ex, published=spec, complete_job=False)
    return sub.job_id


async def test_single_result_is_extracted_into_the_output_dir(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball(
        {"stdout": b"hello\n", "stderr": b"", "exitCode": b"0", "outputs/data.txt": b"42"}
    )
    job_id = await job_with_results(orch, client, results_server.spec("e-1.tar.gz"))
    out = (await client.download_results(job_id, tmp_path / "out")).path
    assert (out / "stdout").read_bytes() == b"hello\n"
    assert (out / "exitCode").read_text() == "0"
    assert (out / "outputs" / "data.txt").read_text() == "42"
    assert not (out / "raw").exists()


async def test_default_output_dir_is_named_after_the_job(
    client: AsyncClient,
    orch: MemoryOrchestrator,
    results_server: ResultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results_server.files["e-1.tar.gz"] = tarball({"stdout": b"x"})
    job_id = await job_with_results(orch, client, results_server.spec("e-1.tar.gz"))
    monkeypatch.chdir(tmp_path)
    out = (await client.download_results(job_id)).path
    assert out == tmp_path / f"job-{job_id[:10]}"
    assert (out / "stdout").read_text() == "x"


async def test_several_results_append_std_files_and_raw_keeps_them_apart(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball(
        {"stdout": b"one\n", "exitCode": b"0", "outputs/a.txt": b"a"}
    )
    results_server.files["e-2.tar.gz"] = tarball(
        {"stdout": b"two\n", "exitCode": b"1", "outputs/b.txt": b"b"}
    )
    specs = [results_server.spec("e-1.tar.gz"), results_server.spec("e-2.tar.gz")]
    job_id = await job_with_results(orch, client, *specs)
    merged = (await client.download_results(job_id, tmp_path / "merged")).path
    assert (merged / "stdout").read_text() == "one\ntwo\n"
    assert (merged / "exitCode").read_text() == "01"
    assert sorted(p.name for p in (merged / "outputs").iterdir()) == ["a.txt", "b.txt"]
    raw = (await client.download_results(job_id, tmp_path / "raw", raw=True)).path
    assert (raw / "raw" / "e-1" / "stdout").read_text() == "one\n"
    assert (raw / "raw" / "e-2" / "outputs" / "b.txt").read_text() == "b"
    assert not (raw / "stdout").exists()


async def test_clashing_files_are_a_conflict_that_moves_nothing(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball({"stdout": b"1", "outputs/same.txt": b"1"})
    results_server.files["e-2.tar.gz"] = tarball({"stdout": b"2", "outputs/same.txt": b"2"})
    specs = [results_server.spec("e-1.tar.gz"), results_server.spec("e-2.tar.gz")]
    job_id = await job_with_results(orch, client, *specs)
    out = tmp_path / "out"
    with pytest.raises(ResultsConflict) as info:
        await client.download_results(job_id, out)
    assert "outputs/same.txt" in info.value.message
    assert "--raw" in info.value.hint
    assert not (out / "stdout").exists() and not (out / "outputs").exists()


async def test_archives_escaping_their_folder_are_refused(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball({"stdout": b"x"}, evil="../../escaped")
    job_id = await job_with_results(orch, client, results_server.spec("e-1.tar.gz"))
    with pytest.raises(InternalError):
        await client.download_results(job_id, tmp_path / "out")
    assert not (tmp_path / "escaped").exists()


async def test_download_failures(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    missing = await job_with_results(orch, client, results_server.spec("gone.tar.gz"))
    with pytest.raises(Unavailable) as info:
        await client.download_results(missing, tmp_path / "a")
    assert "404" in info.value.message
    ipfs = await job_with_results(orch, client, SpecConfig("ipfs", {"CID": ""}))
    with pytest.raises(UnsupportedResult):
        await client.download_results(ipfs, tmp_path / "b")


async def test_links_inside_are_kept_links_leaving_are_skipped_and_named(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball(
        {"stdout": b"ok\n", "exitCode": b"0", "outputs/data.txt": b"42", "outputs/sub/x": b"x"},
        links={
            "outputs/abs": "/etc/shadow",
            "outputs/rel": "data.txt",
            "outputs/dir": "sub",
            "outputs/up": "../../escaped",
            "outputs/self": ".",
            "outputs/trick": "self/self/../../escaped",
            "stdout": "outputs/data.txt",
        },
    )
    job_id = await job_with_results(orch, client, results_server.spec("e-1.tar.gz"))
    got = await client.download_results(job_id, tmp_path / "dl" / "out")
    out = got.path
    assert (out / "stdout").read_text() == "ok\n"
    assert (out / "outputs" / "data.txt").read_text() == "42"
    assert os.readlink(out / "outputs" / "rel") == "data.txt"
    assert (out / "outputs" / "rel").read_text() == "42"
    assert os.readlink(out / "outputs" / "dir") == "sub"
    assert (out / "outputs" / "dir" / "x").read_text() == "x"
    assert os.readlink(out / "outputs" / "self") == "."
    for gone in ("abs", "up", "trick"):
        assert not (out / "outputs" / gone).is_symlink()
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "dl" / "escaped").exists()
    assert {(e.path, e.reason, e.target) for e in got.skipped} == {
        ("outputs/abs", SkipReason.ABSOLUTE_LINK, "/etc/shadow"),
        ("outputs/up", SkipReason.ESCAPING_LINK, "../../escaped"),
        ("outputs/trick", SkipReason.LINK_THROUGH_LINK, "self/self/../../escaped"),
        ("stdout", SkipReason.LAYOUT_LINK, "outputs/data.txt"),
    }


async def test_an_absolute_link_into_a_result_folder_is_kept_as_a_relative_one(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball(
        {"stdout": b"", "outputs/data.txt": b"42", "outputs/deep/x": b"x"},
        links={
            "outputs/abs": "/mnt/out/data.txt",  # the task's own view of its result folder
            "outputs/deep/up": "/mnt/out/data.txt",
            "outputs/whole": "/mnt/out/",
            "outputs/host": "/etc/passwd",
            "outputs/lookalike": "/mnt/outside",
        },
    )
    job = docker_job()
    job.task.result_paths = [ResultPath(name="outputs", path="/mnt/out")]
    sub = await client.submit(job)
    ex = await orch.start_execution(sub.job_id)
    await orch.complete_execution(
        ex, published=results_server.spec("e-1.tar.gz"), complete_job=False
    )
    got = await client.download_results(sub.job_id, tmp_path / "dl")
    out = got.path / "outputs"
    assert os.readlink(out / "abs") == "data.txt" and (out / "abs").read_text() == "42"
    assert os.readlink(out / "deep" / "up") == "../data.txt"
    assert (out / "deep" / "up").read_text() == "42"
    assert os.readlink(out / "whole") == "."
    assert {(e.path, e.reason) for e in got.skipped} == {
        ("outputs/host", SkipReason.ABSOLUTE_LINK),
        ("outputs/lookalike", SkipReason.ABSOLUTE_LINK),
    }


async def test_entries_under_a_link_are_not_written_through_it(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    # The link comes after the file in the archive: extraction order must not matter.
    results_server.files["e-1.tar.gz"] = tarball(
        {"stdout": b"", "outputs/d/planted": b"evil"}, links={"outputs/d": "../.."}
    )
    job_id = await job_with_results(orch, client, results_server.spec("e-1.tar.gz"))
    got = await client.download_results(job_id, tmp_path / "out")
    assert not (got.path / "outputs" / "d").is_symlink()
    assert not (got.path / "outputs" / "d").exists()
    assert not (tmp_path / "planted").exists()
    assert {(e.path, e.reason) for e in got.skipped} == {
        ("outputs/d", SkipReason.ESCAPING_LINK),
        ("outputs/d/planted", SkipReason.INSIDE_LINK),
    }


async def test_a_link_of_one_result_cannot_carry_a_file_of_another(
    client: AsyncClient, orch: MemoryOrchestrator, results_server: ResultServer, tmp_path: Path
) -> None:
    results_server.files["e-1.tar.gz"] = tarball(
        {"outputs/sub/a": b"a"}, links={"outputs/d": "sub"}
    )
    results_server.files["e-2.tar.gz"] = tarball({"outputs/d/b": b"b"})
    specs = [results_server.spec("e-1.tar.gz"), results_server.spec("e-2.tar.gz")]
    job_id = await job_with_results(orch, client, *specs)
    with pytest.raises(ResultsConflict):
        await client.download_results(job_id, tmp_path / "out")
    assert not (tmp_path / "out" / "outputs").exists()


async def test_a_job_without_results_is_an_error_that_creates_no_folder(
    client: AsyncClient, orch: MemoryOrchestrator, tmp_path: Path
) -> None:
    sub = await client.submit(docker_job())
    ex = await orch.start_execution(sub.job_id)
    await orch.fail_execution(ex, "image local/nope:1 not found")
    out = tmp_path / "out"
    with pytest.raises(NoResults) as info:
        await client.download_results(sub.job_id, out)
    assert info.value.code == "NoResults"
    assert "Failed" in info.value.message and "local/nope:1" in info.value.message
    assert not out.exists()


def test_a_killed_downloads_staging_folder_goes_at_the_next_download(tmp_path: Path) -> None:
    """A ``job get`` killed mid-download leaves its hidden staging folder; the next download
    into the same folder removes it, and leaves alone those of live downloads and of other
    hosts (a shared folder)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32]
    killed = tmp_path / f".download-{host}-{dead.pid}-abc"
    live = tmp_path / f".download-{host}-{os.getpid()}-def"
    other_host = tmp_path / f".download-elsewhere-{dead.pid}-ghi"
    for folder in (killed, live, other_host):
        (folder / "part").mkdir(parents=True)
        (folder / "part" / "file").write_bytes(b"x" * 1000)

    fresh = staging_folder(tmp_path)

    assert not killed.exists()
    assert live.exists() and other_host.exists()
    assert fresh.name.startswith(f".download-{host}-{os.getpid()}-")
