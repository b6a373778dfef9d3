"""Reading a published archive back: the CID of the results it holds is the one the local
publisher recorded, however the tree is shaped; an archive that is not results, or is larger
than the limit, says so instead of giving a CID."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from bacalhau.publisher import archive_cid, results_cid, write_archive


def tree(root: Path) -> Path:
    results = root / "results"
    (results / "out" / "deep" / "er").mkdir(parents=True)
    (results / "stdout").write_text("hello\n")
    (results / "exitCode").write_text("0")
    (results / "out" / "big.bin").write_bytes(os.urandom(700_000))  # several chunks
    (results / "out" / "deep" / "er" / "x").write_text("x")
    (results / "out" / "z-after-deep").write_text("z")
    (results / "empty").mkdir()
    (results / ".hidden").mkdir()
    (results / ".hidden" / "secret").write_text("not part of the CID")
    (results / "out" / ".dot").write_text("nor this")
    os.symlink("big.bin", results / "out" / "link")
    os.link(results / "out" / "big.bin", results / "out" / "hard")
    return results


def test_the_cid_read_back_is_the_one_the_publisher_recorded(tmp_path: Path) -> None:
    results = tree(tmp_path)
    recorded = write_archive(results, tmp_path / "a.tar.gz")
    assert str(recorded) == results_cid(results)
    with (tmp_path / "a.tar.gz").open("rb") as f:
        digest = archive_cid(f, max_bytes=1 << 30)
    assert digest.cid == str(recorded) and not digest.malformed and not digest.skipped


def test_altered_content_gives_another_cid(tmp_path: Path) -> None:
    results = tree(tmp_path)
    claimed = str(write_archive(results, tmp_path / "a.tar.gz"))
    (results / "out" / "deep" / "er" / "x").write_text("y")
    write_archive(results, tmp_path / "b.tar.gz")
    with (tmp_path / "b.tar.gz").open("rb") as f:
        digest = archive_cid(f, max_bytes=1 << 30)
    assert digest.cid and digest.cid != claimed


def _tar_gz(*entries: tuple[str, bytes | None]) -> io.BytesIO:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw.seek(0)
    return raw


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ((("../escape", b"x"),), "escapes"),
        ((("a", b"1"), ("a", b"2")), "already in the directory"),
        ((("d", None), ("e", b"1"), ("d/f", b"2")), "already in the directory"),
    ],
)
def test_an_archive_no_directory_could_give_is_malformed(
    entries: tuple[tuple[str, bytes | None], ...], why: str
) -> None:
    digest = archive_cid(_tar_gz(*entries), max_bytes=1 << 20)
    assert not digest.cid and why in digest.malformed


def test_bytes_that_are_no_archive_are_malformed() -> None:
    digest = archive_cid(io.BytesIO(b"this is not gzip"), max_bytes=1 << 20)
    assert not digest.cid and "does not unpack" in digest.malformed


def test_beyond_the_limit_nothing_is_concluded(tmp_path: Path) -> None:
    results = tree(tmp_path)
    write_archive(results, tmp_path / "a.tar.gz")
    size = (tmp_path / "a.tar.gz").stat().st_size
    with (tmp_path / "a.tar.gz").open("rb") as f:
        digest = archive_cid(f, max_bytes=size // 2)
    assert not digest.cid and not digest.malformed
    assert "larger than the" in digest.skipped
    # A gzip bomb is bounded by what it unpacks to, not by its size on the wire.
    bomb = _tar_gz(("zeros", bytes(5 << 20)))
    assert len(bomb.getvalue()) < 1 << 20
    assert "larger than the" in archive_cid(bomb, max_bytes=1 << 20).skipped
