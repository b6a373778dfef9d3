"""Small results kept by the node's store and archived when downloaded: the kept files give
the folder's CID and the very archive a publish of the folder writes; what is not small (or
not plain files) is not kept; the result server serves what its source keeps, over HTTP,
ranges included, and nothing once the source is gone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bacalhau.models import Job
from bacalhau.publisher import KeptResults, LocalResultServer, ResultsKeeper
from bacalhau.publisher._kept import (
    decode_kept,
    encode_kept,
    kept_archive,
    kept_cid,
    snapshot,
)
from bacalhau.publisher._local import SMALL_RESULTS_BYTES, _archive_in_memory
from bacalhau.storage.cid import Importer
from tests.publisher.test_local_publisher import archive_entries

_NAMES = st.sampled_from(["stdout", "stderr", "exitCode", ".hidden", "out.txt", "é"])


def _small(max_files: int = 8, max_bytes: int = SMALL_RESULTS_BYTES) -> dict[str, object]:
    return {"max_files": max_files, "max_bytes": max_bytes}


def _layout(folder: Path, out: bytes = b"hello\n", err: bytes = b"") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout").write_bytes(out)
    (folder / "stderr").write_bytes(err)
    (folder / "exitCode").write_text("0")
    os.chmod(folder / "exitCode", 0o644)
    return folder


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=st.dictionaries(_NAMES, st.binary(max_size=3000), min_size=0, max_size=6))
def test_kept_files_give_the_folders_cid_and_its_archive(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    folder = tmp_path_factory.mktemp("results")
    for name, data in files.items():
        (folder / name).write_bytes(data)
        os.chmod(folder / name, 0o640 if name.startswith("s") else 0o644)
    kept = snapshot(folder, **_small())  # type: ignore[arg-type]
    assert kept is not None
    assert {f.name: f.data for f in kept.files} == files
    # The CID `ipfs add -r` gives the folder (hidden files are not part of it)...
    assert kept_cid(kept) == Importer(None).add_path(folder).cid
    # ...and the bytes the publisher archives the folder into, whatever the level.
    for level in (1, 6, 9):
        archived, cid = _archive_in_memory(folder, level)
        assert kept_archive(kept, level) == archived
        assert cid == kept_cid(kept)


def test_an_archive_of_kept_files_extracts_to_the_folder(tmp_path: Path) -> None:
    folder = _layout(tmp_path / "r", out=b"x" * 5000, err=b"oops\n")
    kept = snapshot(folder, **_small())  # type: ignore[arg-type]
    assert kept is not None
    entries = archive_entries(kept_archive(kept, 6))
    assert entries == {"exitCode": b"0", "stderr": b"oops\n", "stdout": b"x" * 5000}
    modes = {f.name: f.mode for f in kept.files}
    assert modes["exitCode"] == 0o644
    assert {f.name: f.mtime for f in kept.files} == {
        p.name: p.stat().st_mtime for p in folder.iterdir()
    }


def test_what_is_not_a_few_small_plain_files_is_not_kept(tmp_path: Path) -> None:
    folder = _layout(tmp_path / "r")
    assert snapshot(folder, **_small()) is not None  # type: ignore[arg-type]
    assert snapshot(folder, **_small(max_files=2)) is None  # type: ignore[arg-type]
    assert snapshot(folder, **_small(max_bytes=6)) is None  # type: ignore[arg-type]
    assert snapshot(folder, **_small(max_bytes=7)) is not None  # type: ignore[arg-type]
    (folder / "outputs").mkdir()
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    (folder / "outputs").rmdir()
    (folder / "link").symlink_to(folder / "stdout")
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    (folder / "link").unlink()
    os.link(folder / "stdout", folder / "again")  # an archive would hold a hard link
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    (folder / "again").unlink()
    os.mkfifo(folder / "fifo")
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    (folder / "fifo").unlink()
    (folder / os.fsdecode(b"\xff-not-utf-8")).write_bytes(b"x")  # archived as it is instead
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    os.unlink(bytes(folder) + b"/\xff-not-utf-8")
    (folder / "tab\tname").write_bytes(b"x")
    assert snapshot(folder, **_small()) is None  # type: ignore[arg-type]
    (folder / "tab\tname").unlink()
    assert snapshot(folder, **_small()) is not None  # type: ignore[arg-type]
    assert snapshot(tmp_path / "missing", **_small()) is None  # type: ignore[arg-type]


def test_kept_results_read_back_as_stored_and_nothing_else_is_taken_for_them() -> None:
    kept = KeptResults(())
    assert decode_kept(encode_kept(kept)) == kept
    folder_like = decode_kept(encode_kept(KeptResults(())))
    assert folder_like.files == ()
    for bad in (b"", b"[]", b'{"v": 2, "files": []}', b'{"v": 1, "files": [[1]]}', b"\xff"):
        with pytest.raises(ValueError):
            decode_kept(bad)


async def test_the_server_archives_what_its_source_keeps(tmp_path: Path) -> None:
    folder = _layout(tmp_path / "r", out=b"kept output\n")
    kept = snapshot(folder, **_small())  # type: ignore[arg-type]
    assert kept is not None
    stored = {"e-kept": encode_kept(kept)}
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        publisher = server.publisher()
        assert isinstance(publisher, ResultsKeeper)
        # No store keeps results yet: the publisher archives them as before.
        assert publisher.keep_small_results(folder) is None
        server.serve_kept(lambda eid: decode_kept(stored[eid]) if eid in stored else None)
        mine = publisher.keep_small_results(folder)
        assert mine == kept
        spec = publisher.publish_kept("e-kept", kept)
        assert spec.params["CID"] == str(Importer(None).add_path(folder).cid)
        # Nothing was archived: no file, no row.
        assert not (tmp_path / "published" / "e-kept.tar.gz").exists()
        assert server.archives.get("e-kept.tar.gz") is None

        whole, _ = _archive_in_memory(folder, 6)
        async with aiohttp.ClientSession() as http:
            async with http.get(spec.params["URL"]) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "application/gzip"
                assert await r.read() == whole
            async with http.get(spec.params["URL"], headers={"Range": "bytes=10-19"}) as r:
                assert r.status == 206
                assert await r.read() == whole[10:20]
            async with http.get(publisher.url_for("e-other")) as r:
                assert r.status == 404
            # An archive published the usual way is still served from the archive store.
            big = await publisher.publish("e-archived", Job(), folder)
            async with http.get(big.params["URL"]) as r:
                assert r.status == 200
                assert archive_entries(await r.read())["stdout"] == b"kept output\n"
            server.serve_kept(None)  # the store closed
            async with http.get(spec.params["URL"]) as r:
                assert r.status == 404


async def test_a_stale_file_of_the_name_does_not_shadow_kept_results(tmp_path: Path) -> None:
    folder = _layout(tmp_path / "r")
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        kept = snapshot(folder, **_small())  # type: ignore[arg-type]
        assert kept is not None
        server.serve_kept(lambda eid: kept)
        stale = tmp_path / "published" / "e-1.tar.gz"
        stale.write_bytes(b"an earlier publish")
        server.publisher().publish_kept("e-1", kept)
        assert not stale.exists()
        assert stat.S_ISDIR((tmp_path / "published").stat().st_mode)
