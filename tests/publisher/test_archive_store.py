"""Small results' archives kept as rows of the result server's store, not as files: served
as the files are (whole, by range, HEAD), the same bytes and CID, kept across a restart and
a killed process, never shadowed by a stale archive of the other kind, and forgotten by
retention."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp

from bacalhau.models import Job
from bacalhau.publisher import LocalResultServer, write_archive
from bacalhau.publisher._archive_store import STORE_FILE, ArchiveStore
from bacalhau.storage.cid import Importer
from tests.publisher.test_local_publisher import archive_entries, make_results, make_small_results


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(STORE_FILE))


async def test_small_archives_are_rows_served_like_files(tmp_path: Path) -> None:
    results = make_small_results(tmp_path)
    published = tmp_path / "published"
    async with (
        LocalResultServer(directory=published, port=0) as server,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        spec = await server.publisher().publish("e-small", Job(), results)
        assert spec.params["CID"] == str(Importer(None).add_path(results).cid)
        assert _files(published) == []  # no file was created for it
        write_archive(results, tmp_path / "as-file.tar.gz")
        expected = (tmp_path / "as-file.tar.gz").read_bytes()

        async with http.get("/e-small.tar.gz") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/gzip"
            assert await resp.read() == expected
        async with http.head("/e-small.tar.gz") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(len(expected))
        async with http.get("/e-small.tar.gz", headers={"Range": "bytes=0-9"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 0-9/{len(expected)}"
            assert await resp.read() == expected[:10]
        async with http.get("/e-small.tar.gz", headers={"Range": "bytes=-5"}) as resp:
            assert resp.status == 206
            assert await resp.read() == expected[-5:]
        for wrong in ("bytes=100000-", "bytes=9-2", "pages=1-2"):
            async with http.get("/e-small.tar.gz", headers={"Range": wrong}) as resp:
                assert resp.status == 416, wrong
                assert resp.headers["Content-Range"] == f"bytes */{len(expected)}"
        for missing in ("/e-other.tar.gz", f"/{STORE_FILE}", "/.small-archives.db-wal"):
            async with http.get(missing) as resp:
                assert resp.status == 404, missing

    # Kept across a restart of the server.
    async with (
        LocalResultServer(directory=published, port=0) as server,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/e-small.tar.gz") as resp,
    ):
        assert archive_entries(await resp.read()) == {
            "stdout": b"hello\n",
            "stderr": b"",
            "exitCode": b"0",
        }


async def test_an_archive_of_the_other_kind_never_shadows_the_latest(tmp_path: Path) -> None:
    # The same execution published twice (a restart re-ran it): the latest archive answers.
    published = tmp_path / "published"
    small, large = make_small_results(tmp_path), make_results(tmp_path)
    async with (
        LocalResultServer(directory=published, port=0) as server,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        publisher = server.publisher()
        await publisher.publish("e-1", Job(), large)
        assert _files(published) == ["e-1.tar.gz"]
        await publisher.publish("e-1", Job(), small)
        assert _files(published) == []
        async with http.get("/e-1.tar.gz") as resp:
            assert "outputs/a.txt" not in archive_entries(await resp.read())
        await publisher.publish("e-1", Job(), large)
        assert server.archives.get("e-1.tar.gz") is None
        async with http.get("/e-1.tar.gz") as resp:
            assert "outputs/a.txt" in archive_entries(await resp.read())


async def test_forgotten_archives_are_gone(tmp_path: Path) -> None:
    small = make_small_results(tmp_path)
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        publisher = server.publisher()
        for execution_id in ("e-1", "e-2", "e-3"):
            await publisher.publish(execution_id, Job(), small)
        publisher.forget(["e-1", "e-3", "e-never"])
        assert server.archives.get("e-1.tar.gz") is None
        assert server.archives.get("e-3.tar.gz") is None
        assert server.archives.get("e-2.tar.gz") is not None


def test_a_put_survives_the_process_being_killed(tmp_path: Path) -> None:
    # Committed before put() returns: a SIGKILL right after loses nothing.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from bacalhau.publisher._archive_store import ArchiveStore
        store = ArchiveStore(Path({str(tmp_path)!r}))
        store.put("e-killed.tar.gz", b"archive bytes")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, check=False, timeout=60)
    assert done.returncode == -9
    store = ArchiveStore(tmp_path)
    try:
        assert store.get("e-killed.tar.gz") == b"archive bytes"
    finally:
        store.close()
