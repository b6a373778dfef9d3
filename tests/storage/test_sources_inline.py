"""The inline input source: data: URLs, plain or a gzip'd tar, bounded and contained."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionFailed, InvalidJobSpec, UnsafePath
from bacalhau.models import SpecConfig
from bacalhau.storage import InlineSource


def data_url(data: bytes, mime: str = "text/plain") -> SpecConfig:
    return SpecConfig("inline", {"URL": f"data:{mime};base64," + base64.b64encode(data).decode()})


def tar_gz(entries: list[tarfile.TarInfo], body: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(body) if info.isfile() else None)
    return buf.getvalue()


def entry(
    name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info


async def test_plain_payload_is_one_file(tmp_path: Path) -> None:
    prepared = await InlineSource().prepare(data_url(b"hello"), tmp_path)
    assert prepared.path.read_bytes() == b"hello" and prepared.read_only
    plain = SpecConfig("inline", {"URL": "data:,a%20b"})
    (tmp_path / "2").mkdir()
    assert (await InlineSource().prepare(plain, tmp_path / "2")).path.read_bytes() == b"a b"


async def test_gzipped_tar_is_unpacked_into_a_folder(tmp_path: Path) -> None:
    archive = tar_gz([entry("dir", kind=tarfile.DIRTYPE), entry("dir/a.txt", 3)], b"abc")
    prepared = await InlineSource().prepare(data_url(archive, "application/gzip"), tmp_path)
    assert (prepared.path / "dir" / "a.txt").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "bad",
    [
        entry("../escape.txt", 3),
        entry("/abs.txt", 3),
        entry("link", kind=tarfile.SYMTYPE, link="../../etc"),
        entry("hard", kind=tarfile.LNKTYPE, link="../outside"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "hardlink-out"],
)
async def test_an_entry_escaping_its_folder_refuses_the_archive(
    tmp_path: Path, bad: tarfile.TarInfo
) -> None:
    (tmp_path / "in").mkdir()
    archive = tar_gz([entry("ok.txt", 3), bad], b"abc")
    with pytest.raises(UnsafePath, match="outside its directory"):
        await InlineSource().prepare(data_url(archive, "application/gzip"), tmp_path / "in")
    assert sorted(os.listdir(tmp_path)) == ["in"]


async def test_size_limits(tmp_path: Path) -> None:
    with pytest.raises(ExecutionFailed, match="larger than the limit of 100 bytes"):
        await InlineSource(max_bytes=100).prepare(data_url(b"x" * 1000), tmp_path)
    # A small archive that unpacks to more than the limit (a "bomb") is refused too.
    bomb = tar_gz([entry("big", 100_000)], b"\0" * 100_000)
    assert len(bomb) < 1000
    with pytest.raises(ExecutionFailed, match="unpacks to more than the limit"):
        await InlineSource(max_bytes=10_000).prepare(data_url(bomb), tmp_path)


async def test_not_a_data_url(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobSpec):
        await InlineSource().validate(SpecConfig("inline", {"URL": "http://example.com/x"}))
