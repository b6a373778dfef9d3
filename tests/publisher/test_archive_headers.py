"""The local publisher's archive headers are built from the importer's ``lstat``: they must be
what ``TarFile.gettarinfo`` gives, less the node's user and group."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from bacalhau.publisher import write_archive
from tests.publisher.test_local_publisher import make_full_results


def expected_headers(results: Path) -> dict[str, tarfile.TarInfo]:
    """Headers as ``gettarinfo`` makes them, walking in the archive's (sorted) order."""
    out: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(os.devnull, "w") as tar:

        def visit(path: Path, rel: str) -> None:
            info = tar.gettarinfo(str(path), arcname=rel)
            if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                return
            out[rel] = info
            if info.isdir():
                for name in sorted(os.listdir(path), key=os.fsencode):
                    visit(path / name, f"{rel}/{name}")

        for name in sorted(os.listdir(results), key=os.fsencode):
            visit(results / name, name)
    return out


def test_headers_are_those_of_gettarinfo(tmp_path: Path) -> None:
    results = make_full_results(tmp_path)
    os.mkfifo(results / "outputs" / "pipe")  # not a result: left out
    write_archive(results, tmp_path / "r.tar.gz")
    with tarfile.open(tmp_path / "r.tar.gz") as tar:
        got = {m.name: m for m in tar.getmembers()}
    want = expected_headers(results)
    assert list(got) == list(want)
    assert "outputs/pipe" not in got and got["outputs/hard.txt"].islnk()
    for name, info in want.items():
        member = got[name]
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", ""), name
        assert member.mode == info.mode & 0o7777, name  # a header keeps the permission bits
        fields = ("type", "size", "mtime", "linkname")
        assert [getattr(member, f) for f in fields] == [getattr(info, f) for f in fields], name
