from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import aiohttp
import pytest

from bacalhau.errors import PublishFailed
from bacalhau.models import Job, SpecConfig
from bacalhau.publisher import (
    LocalPublisher,
    LocalResultServer,
    NoopPublisher,
    Publisher,
    write_archive,
)
from bacalhau.publisher._archive_store import STORE_FILE
from bacalhau.publisher._local import SMALL_RESULTS_BYTES, _is_small
from bacalhau.storage.cid import Importer
from tests.storage.opens import count_opens


def make_results(root: Path) -> Path:
    results = root / "results"
    (results / "outputs" / "deep").mkdir(parents=True)
    (results / "stdout").write_text("hello\n")
    (results / "stderr").write_text("")
    (results / "exitCode").write_text("0")
    (results / "outputs" / "a.txt").write_text("A" * 10_000)
    (results / "outputs" / "deep" / "b.bin").write_bytes(os.urandom(4096))
    (results / "empty").mkdir()
    return results


def archive_entries(data: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            out[member.name] = f.read() if f is not None else None
    return out


async def test_publish_and_download_over_http(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        assert server.port > 0
        publisher = server.publisher()
        assert isinstance(publisher, Publisher)
        spec = await publisher.publish("e-123", Job(), results)

        url = f"http://127.0.0.1:{server.port}/e-123.tar.gz"
        # The result also records the CID of the results directory (`ipfs add -r` of it).
        cid = str(Importer(None).add_path(results).cid)
        assert spec.to_dict() == {"Type": "urlDownload", "Params": {"URL": url, "CID": cid}}
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/gzip"
            assert "Content-Encoding" not in resp.headers
            body = await resp.read()

    entries = archive_entries(body)
    assert entries["stdout"] == b"hello\n"
    assert entries["stderr"] == b""
    assert entries["exitCode"] == b"0"
    assert entries["outputs/a.txt"] == b"A" * 10_000
    assert entries["outputs/deep/b.bin"] == (results / "outputs/deep/b.bin").read_bytes()
    assert "empty" in entries  # empty result folders survive
    assert not any(name.startswith(("/", "results", "./")) for name in entries)
    # Atomic write: nothing but the archive is left in the directory (and the store of small
    # archives, which this one is not).
    left = sorted(p.name for p in (tmp_path / "published").iterdir())
    assert [name for name in left if not name.startswith(STORE_FILE)] == ["e-123.tar.gz"]


async def test_server_serves_only_archives(tmp_path: Path) -> None:
    published = tmp_path / "published"
    published.mkdir()
    (published / "e-1.tar.gz").write_bytes(b"x" * 100)
    (published / ".e-2.tar.gz.abc.tmp").write_bytes(b"partial")
    (published / "notes.txt").write_text("secret")
    (tmp_path / "outside.tar.gz").write_text("outside")
    (published / "link.tar.gz").symlink_to(tmp_path / "outside.tar.gz")
    (published / "dir.tar.gz").mkdir()

    async with (
        LocalResultServer(directory=published, port=0) as server,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        async with http.head("/e-1.tar.gz") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == "100"
        async with http.get("/e-1.tar.gz", headers={"Range": "bytes=0-9"}) as resp:
            assert resp.status == 206
            assert await resp.read() == b"x" * 10
        for path in (
            "/",
            "/notes.txt",
            "/.e-2.tar.gz.abc.tmp",
            "/missing.tar.gz",
            "/link.tar.gz",
            "/dir.tar.gz",
            "/..%2Foutside.tar.gz",
            "/a/e-1.tar.gz",
        ):
            async with http.get(path) as resp:
                assert resp.status == 404, path
        async with http.post("/e-1.tar.gz") as resp:
            assert resp.status == 405


async def test_publisher_needs_real_port_and_reachable_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bound port"):
        LocalPublisher(directory=tmp_path, address="127.0.0.1", port=0)
    server = LocalResultServer(directory=tmp_path, host="0.0.0.0", port=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    async with server:
        with pytest.raises(ValueError, match="clients can reach"):
            server.publisher()
        publisher = server.publisher(address="node-1.example")
        assert publisher.url_for("e-9") == f"http://node-1.example:{server.port}/e-9.tar.gz"
    v6 = LocalPublisher(directory=tmp_path, address="::1", port=6001)
    assert v6.url_for("e-9") == "http://[::1]:6001/e-9.tar.gz"


async def test_publish_failures_are_coded(tmp_path: Path) -> None:
    publisher = LocalPublisher(directory=tmp_path / "out", address="127.0.0.1", port=6001)
    with pytest.raises(PublishFailed) as missing:
        await publisher.publish("e-1", Job(), tmp_path / "no-such-dir")
    assert missing.value.code == "PublishFailed"
    assert missing.value.retryable

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    results = make_results(tmp_path)
    with pytest.raises(PublishFailed):
        await LocalPublisher(directory=blocked, address="127.0.0.1", port=6001).publish(
            "e-1", Job(), results
        )
    with pytest.raises(PublishFailed, match="bad ID"):
        await publisher.publish("../escape", Job(), results)


async def test_noop_publisher(tmp_path: Path) -> None:
    publisher = NoopPublisher()
    assert isinstance(publisher, Publisher)
    assert await publisher.is_installed()
    assert not publisher.copies_results
    assert await publisher.publish("e-1", Job(), tmp_path) == SpecConfig()


async def test_links_are_archived_as_links_never_followed(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    secret = tmp_path / "node-secret"
    secret.write_text("node key")
    (tmp_path / "node-dir").mkdir()
    (tmp_path / "node-dir" / "inside").write_text("node file")
    outputs = results / "outputs"
    (outputs / "abs").symlink_to(secret)
    (outputs / "dir").symlink_to(tmp_path / "node-dir")
    (outputs / "rel").symlink_to("a.txt")
    (outputs / "up").symlink_to("../../node-secret")

    publisher = LocalPublisher(directory=tmp_path / "published", address="127.0.0.1", port=6001)
    await publisher.publish("e-links", Job(), results)
    data = (tmp_path / "published" / "e-links.tar.gz").read_bytes()

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
        names = tar.getnames()
    assert links == {
        "outputs/abs": str(secret),
        "outputs/dir": str(tmp_path / "node-dir"),
        "outputs/rel": "a.txt",
        "outputs/up": "../../node-secret",
    }
    assert not any(n.startswith("outputs/dir/") for n in names)  # a linked folder is not walked
    assert b"node key" not in gzip.decompress(data) and b"node file" not in gzip.decompress(data)


def make_full_results(root: Path) -> Path:
    """Results with everything a job can leave: nested and empty folders, unicode names,
    a file of several chunks, hidden files and folders, links (symbolic and hard)."""
    results = make_results(root)
    (results / "outputs" / "big.bin").write_bytes(os.urandom(3 * 262_144 + 17))
    (results / "outputs" / "ünïcødé.txt").write_text("señal\n")
    (results / "outputs" / ".hidden").write_text("hidden but published")
    (results / "outputs" / ".cache").mkdir()
    (results / "outputs" / ".cache" / "entry").write_text("cached")
    (results / "outputs" / "rel").symlink_to("a.txt")
    os.link(results / "outputs" / "a.txt", results / "outputs" / "hard.txt")
    return results


def regular_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


async def test_the_archive_and_the_cid_come_from_one_read_of_each_file(tmp_path: Path) -> None:
    results = make_full_results(tmp_path)
    publisher = LocalPublisher(directory=tmp_path / "published", address="127.0.0.1", port=6001)
    with count_opens(results) as opens:
        spec = await publisher.publish("e-once", Job(), results)
    assert dict(opens) == dict.fromkeys(regular_files(results), 1)

    # The CID `ipfs add -r` gives (hidden entries left out), the archive everything.
    assert spec.params["CID"] == str(Importer(None).add_path(results).cid)
    entries = archive_entries((tmp_path / "published" / "e-once.tar.gz").read_bytes())
    for rel in regular_files(results) - {"outputs/hard.txt"}:
        assert entries[rel] == (results / rel).read_bytes(), rel
    assert "outputs/.cache" in entries and "outputs/rel" in entries
    assert "outputs/hard.txt" in entries  # a hard link to a.txt, stored as such


def test_write_archive_returns_the_cid_of_what_it_archived(tmp_path: Path) -> None:
    results = make_full_results(tmp_path)
    cid = write_archive(results, tmp_path / "r.tar.gz", compress_level=1)
    assert cid == Importer(None).add_path(results).cid


def make_small_results(root: Path) -> Path:
    results = root / "small"
    results.mkdir()
    (results / "stdout").write_text("hello\n")
    (results / "stderr").write_text("")
    (results / "exitCode").write_text("0")
    return results


async def test_small_results_publish_the_same_archive_and_cid(tmp_path: Path) -> None:
    results = make_small_results(tmp_path)
    assert _is_small(results)  # archived on the event loop
    publisher = LocalPublisher(directory=tmp_path / "published", address="127.0.0.1", port=6001)
    spec = await publisher.publish("e-small", Job(), results)
    assert spec.params["CID"] == str(Importer(None).add_path(results).cid)
    archive = (tmp_path / "published" / "e-small.tar.gz").read_bytes()
    write_archive(results, tmp_path / "thread.tar.gz")
    assert archive == (tmp_path / "thread.tar.gz").read_bytes()
    assert archive_entries(archive) == {"stdout": b"hello\n", "stderr": b"", "exitCode": b"0"}


async def test_small_results_are_written_straight_to_their_archive(tmp_path: Path) -> None:
    # No temp file to create and rename: one file opened in the directory, its final name,
    # readable by everyone whatever the node's umask.
    results = make_small_results(tmp_path)
    published = tmp_path / "published"
    published.mkdir()  # as after the first archive
    publisher = LocalPublisher(directory=published, address="127.0.0.1", port=6001)
    umask = os.umask(0o077)
    try:
        with count_opens(published) as opens:
            await publisher.publish("e-small", Job(), results)
    finally:
        os.umask(umask)
    assert dict(opens) == {"e-small.tar.gz": 1}
    assert sorted(p.name for p in published.iterdir()) == ["e-small.tar.gz"]
    assert stat.S_IMODE((published / "e-small.tar.gz").stat().st_mode) == 0o644


def test_only_a_few_small_files_are_small(tmp_path: Path) -> None:
    small = make_small_results(tmp_path)
    assert _is_small(small)
    assert not _is_small(make_results(tmp_path))  # folders
    (small / "stdout").write_bytes(b"x" * (SMALL_RESULTS_BYTES + 1))
    assert not _is_small(small)
    (small / "stdout").write_text("hello\n")
    (small / "link").symlink_to("stdout")
    assert not _is_small(small)
    (small / "link").unlink()
    for i in range(10):
        (small / f"f{i}").write_text("")
    assert not _is_small(small)
    assert not _is_small(tmp_path / "missing")
