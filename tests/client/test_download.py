"""``job get``: results downloaded over real HTTP, extracted and merged per Bacalhau's rules."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.client import AsyncClient, ResultsConflict, UnsupportedResult
from bacalhau.errors import InternalError, Unavailable
from bacalhau.models import SpecConfig
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.client.test_client import docker_job


def tarball(files: dict[str, bytes], *, evil: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
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
    out = await client.download_results(job_id, tmp_path / "out")
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
    out = await client.download_results(job_id)
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
    merged = await client.download_results(job_id, tmp_path / "merged")
    assert (merged / "stdout").read_text() == "one\ntwo\n"
    assert (merged / "exitCode").read_text() == "01"
    assert sorted(p.name for p in (merged / "outputs").iterdir()) == ["a.txt", "b.txt"]
    raw = await client.download_results(job_id, tmp_path / "raw", raw=True)
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
    ipfs = await job_with_results(orch, client, SpecConfig("ipfs", {"CID": "QmX"}))
    with pytest.raises(UnsupportedResult):
        await client.download_results(ipfs, tmp_path / "b")
