"""The urlDownload input source against a local aiohttp server the test starts."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.errors import ExecutionFailed
from bacalhau.models import SpecConfig
from bacalhau.storage import UrlDownloadSource


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.base = ""

    def count(self, request: web.Request) -> int:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return self.hits[request.path]

    async def data(self, request: web.Request) -> web.Response:
        self.count(request)
        return web.Response(body=b"col\n1\n2\n")

    async def flaky(self, request: web.Request) -> web.Response:
        if self.count(request) < 3:
            return web.Response(status=503)
        return web.Response(body=b"finally")

    async def broken(self, request: web.Request) -> web.Response:
        self.count(request)
        return web.Response(status=500)

    async def disposition(self, request: web.Request) -> web.Response:
        return web.Response(
            body=b"named", headers={"Content-Disposition": 'attachment; filename="../../evil.txt"'}
        )

    async def big(self, request: web.Request) -> web.StreamResponse:
        # No Content-Length: the limit must hold while streaming.
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"x" * 1024)
        await resp.write_eof()
        return resp

    async def forbidden(self, request: web.Request) -> web.Response:
        return web.Response(status=403, reason="Forbidden")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.base + "/files/report.csv")

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.base + "/loop")

    async def to_ftp(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/file.csv")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/files/report.csv", srv.data)
    app.router.add_get("/flaky.txt", srv.flaky)
    app.router.add_get("/broken", srv.broken)
    app.router.add_get("/download", srv.disposition)
    app.router.add_get("/big.bin", srv.big)
    app.router.add_get("/secret", srv.forbidden)
    app.router.add_get("/latest", srv.redirect)
    app.router.add_get("/loop", srv.loop)
    app.router.add_get("/to-ftp", srv.to_ftp)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield srv
    await runner.cleanup()


def url_spec(url: str) -> SpecConfig:
    return SpecConfig("urlDownload", {"URL": url})


def fast(**kw: int) -> UrlDownloadSource:
    return UrlDownloadSource(backoff=0.01, timeout=10, **kw)


async def test_file_named_from_the_final_url(server: Server, tmp_path: Path) -> None:
    prepared = await fast().prepare(url_spec(server.base + "/latest"), tmp_path)
    assert prepared.path == tmp_path
    assert os.listdir(tmp_path) == ["report.csv"]
    assert (tmp_path / "report.csv").read_bytes() == b"col\n1\n2\n"


async def test_content_disposition_name_cannot_leave_the_folder(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    await fast().prepare(url_spec(server.base + "/download"), tmp_path / "in")
    assert os.listdir(tmp_path / "in") == ["evil.txt"]
    assert sorted(os.listdir(tmp_path)) == ["in"]


async def test_server_errors_are_retried_with_backoff(server: Server, tmp_path: Path) -> None:
    await fast(max_retries=3).prepare(url_spec(server.base + "/flaky.txt"), tmp_path)
    assert (tmp_path / "flaky.txt").read_bytes() == b"finally"
    assert server.hits["/flaky.txt"] == 3

    with pytest.raises(ExecutionFailed, match="failed after 3 attempts: HTTP 500"):
        await fast(max_retries=2).prepare(url_spec(server.base + "/broken"), tmp_path)
    assert server.hits["/broken"] == 3


async def test_404_and_other_answers_fail_at_once(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ExecutionFailed, match=r"was not found \(HTTP 404\)"):
        await fast().prepare(url_spec(server.base + "/missing.csv"), tmp_path)
    with pytest.raises(ExecutionFailed, match="HTTP 403 Forbidden"):
        await fast().prepare(url_spec(server.base + "/secret"), tmp_path)
    assert os.listdir(tmp_path) == []


async def test_download_over_the_limit_is_stopped_and_removed(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionFailed, match="larger than the download limit of 10000 bytes"):
        await fast(max_bytes=10_000).prepare(url_spec(server.base + "/big.bin"), tmp_path)
    assert os.listdir(tmp_path) == []


async def test_connection_refused_is_retried_then_named(tmp_path: Path) -> None:
    with pytest.raises(ExecutionFailed, match="failed after 2 attempts"):
        await fast(max_retries=1).prepare(url_spec("http://127.0.0.1:9/x"), tmp_path)


async def test_redirect_loops_and_non_http_redirects_are_named(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionFailed, match="redirected more than 10 times") as caught:
        await fast().prepare(url_spec(server.base + "/loop"), tmp_path)
    assert "redirects in a loop" in (caught.value.hint or "")
    with pytest.raises(ExecutionFailed, match="redirected to a URL that is not http"):
        await fast().prepare(url_spec(server.base + "/to-ftp"), tmp_path)
    assert os.listdir(tmp_path) == []
