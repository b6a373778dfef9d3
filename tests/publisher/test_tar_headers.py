"""The fast tar headers are the bytes ``tarfile`` writes, and step aside where they differ."""

from __future__ import annotations

import io
import itertools
import tarfile

import pytest

from bacalhau.publisher._tar_headers import add_entry, pax_header

NAMES = ["stdout", "outputs/a.txt", "d" * 99, "e" * 100, "f" * 101, "café", "x/" + "y" * 120]
KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]
MODES = [0o100644, 0o40755, 0o104755, 0o7777, 0]
SIZES = [0, 1, 511, 512, 513, 8**11 - 1, 8**11]
TIMES = [0, 946684800.0, 1764505023.123456789, 2.5, 8**11 - 0.6, 8**11 - 0.4, -1.0, 1764505023]
LINKS = ["", "stdout", "l" * 100, "l" * 101, "ünï"]


def tarinfo(
    name: str, kind: bytes, mode: int, size: int, mtime: float, link: str
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, mtime, link
    return info


def tobuf(info: tarfile.TarInfo) -> bytes | None:
    try:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    except ValueError:
        return None


def test_headers_are_tarfiles_bytes_or_none() -> None:
    fast = 0
    for name, kind, mode, size, mtime, link in itertools.product(
        NAMES, KINDS, MODES, SIZES, TIMES, LINKS
    ):
        info = tarinfo(name, kind, mode, size, mtime, link)
        header = pax_header(info)
        if header is not None:
            fast += 1
            assert header == tobuf(info), info.get_info()
    assert fast > 1000  # the common case is taken


@pytest.mark.parametrize(
    "change",
    [
        {"name": "café"},
        {"name": "n" * 101},
        {"linkname": "l" * 101},
        {"uid": 1},
        {"gname": "staff"},
        {"size": 8**11},
        {"mtime": -1.0},
        {"pax_headers": {"comment": "x"}},
    ],
)
def test_anything_else_is_left_to_tarfile(change: dict[str, object]) -> None:
    info = tarinfo("stdout", tarfile.REGTYPE, 0o100644, 3, 1.5, "")
    for key, value in change.items():
        setattr(info, key, value)
    assert pax_header(info) is None


def test_an_archive_written_with_them_is_tarfiles() -> None:
    entries = [
        (tarinfo("outputs", tarfile.DIRTYPE, 0o40755, 0, 946684800.0, ""), None),
        (tarinfo("outputs/a", tarfile.REGTYPE, 0o100644, 600, 1764505023.25, ""), b"a" * 600),
        (tarinfo("outputs/é", tarfile.REGTYPE, 0o100600, 2, 7.0, ""), b"hi"),
        (tarinfo("outputs/b", tarfile.LNKTYPE, 0o100644, 0, 7.0, "outputs/a"), None),
    ]
    archives = []
    for fast in (True, False):
        out = io.BytesIO()
        with tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in entries:
                content = io.BytesIO(data) if data is not None else None
                if fast:
                    add_entry(tar, info, content, bufsize=256)
                else:
                    tar.addfile(info, content)
        archives.append(out.getvalue())
    assert archives[0] == archives[1]


def test_a_file_shorter_than_its_header_says_fails() -> None:
    with tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarinfo("stdout", tarfile.REGTYPE, 0o100644, 10, 1.0, "")
        with pytest.raises(OSError, match="unexpected end of data"):
            add_entry(tar, info, io.BytesIO(b"short"), bufsize=4)
