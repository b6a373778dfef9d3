"""Tar headers for the entries of a results folder, the bytes ``tarfile`` writes, built faster.

``TarFile.addfile`` spends more on a small file's header (two header blocks in PAX format: an
extended header carrying the exact ``mtime``, then the ustar block) than on compressing the
file. :func:`pax_header` builds exactly the bytes of ``TarInfo.tobuf(PAX_FORMAT)`` for the
common case (ASCII names and link targets within the ustar fields, no owner, a size and time
the ustar fields hold) in one pass, and answers None for anything else, which then goes
through ``tarfile`` itself. :func:`add_entry` writes an entry as ``TarFile.addfile`` does.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

__all__ = ["add_entry", "pax_header"]

_BLOCK = tarfile.BLOCKSIZE
#: Largest value the 12-character numeric fields (size, mtime) hold in octal.
_MAX_NUMBER = 8**11
_NAME_LENGTH = 100
#: ustar fields between the link name and the end of the block: magic and version, empty
#: user and group names, no device numbers, no name prefix, padding.
_TAIL = tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155 + 12)
#: The mode, uid and gid fields of the extended header, and its uid/gid in every header.
_ZERO_FIELD = b"0000000\0"
#: What a header's fixed parts add to its checksum: uid and gid, the checksum field itself
#: (counted as eight spaces) and the tail.
_FIXED_SUM = 2 * sum(_ZERO_FIELD) + 8 * ord(" ") + sum(_TAIL)


def pax_header(info: tarfile.TarInfo) -> bytes | None:
    """``info.tobuf(tarfile.PAX_FORMAT)``, or None when ``info`` is not the common case."""
    name = info.name
    kind = info.type
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    link = info.linkname
    if info.pax_headers or info.uid or info.gid or info.uname or info.gname:
        return None
    if not (name.isascii() and len(name) <= _NAME_LENGTH):
        return None
    if not (link.isascii() and len(link) <= _NAME_LENGTH):
        return None
    size, mtime = info.size, info.mtime
    if not (isinstance(size, int) and 0 <= size < _MAX_NUMBER):
        return None
    extended = b""
    if isinstance(mtime, float):
        rounded = round(mtime)
        if not 0 <= rounded < _MAX_NUMBER:
            return None
        # A float time goes in full in an extended record, rounded in the ustar field.
        extended = _extended_header(b"mtime", str(mtime).encode("ascii"))
        mtime = rounded
    elif not (isinstance(mtime, int) and 0 <= mtime < _MAX_NUMBER):
        return None
    return extended + _ustar_block(
        name.encode("ascii"), info.mode & 0o7777, size, mtime, kind, link.encode("ascii")
    )


def add_entry(
    tar: tarfile.TarFile, info: tarfile.TarInfo, content: BinaryIO | None, *, bufsize: int
) -> None:
    """``tar.addfile(info, content)``, with the header from :func:`pax_header` when it has one
    (``tar`` must be writing PAX format, and made with ``copybufsize=bufsize``). The entry is
    not kept in ``tar.members``: nothing reads them back from an archive being written."""
    header = pax_header(info)
    fileobj = tar.fileobj
    if header is None or fileobj is None:
        tar.addfile(info, content)
        return
    fileobj.write(header)
    tar.offset += len(header)
    if content is not None:
        left = info.size
        while left:  # exactly the size in the header, as tarfile copies
            chunk = content.read(min(bufsize, left))
            if not chunk:
                raise OSError("unexpected end of data")
            fileobj.write(chunk)
            left -= len(chunk)
        blocks, remainder = divmod(info.size, _BLOCK)
        if remainder > 0:
            fileobj.write(bytes(_BLOCK - remainder))
            blocks += 1
        tar.offset += blocks * _BLOCK


def _ustar_block(name: bytes, mode: int, size: int, mtime: int, kind: bytes, link: bytes) -> bytes:
    fields = (b"%07o\0" % mode, b"%011o\0" % size, b"%011o\0" % mtime)
    # The checksum is the sum of the block's bytes: of the parts that vary, plus the rest's.
    checksum = sum(name) + sum(link) + kind[0] + sum(map(sum, fields)) + _FIXED_SUM
    return b"".join(
        (
            name.ljust(_NAME_LENGTH, b"\0"),
            fields[0],
            _ZERO_FIELD,
            _ZERO_FIELD,
            fields[1],
            fields[2],
            b"%06o\0 " % checksum,
            kind,
            link.ljust(_NAME_LENGTH, b"\0"),
            _TAIL,
        )
    )


def _extended_header(keyword: bytes, value: bytes) -> bytes:
    """An extended header block (``././@PaxHeader``) holding one record, with its payload."""
    # A record starts with its own length in decimal, that length included.
    length = len(keyword) + len(value) + 3
    total = previous = 0
    while True:
        total = length + len(str(previous))
        if total == previous:
            break
        previous = total
    record = b"%d %s=%s\n" % (total, keyword, value)
    header = _ustar_block(b"././@PaxHeader", 0, len(record), 0, tarfile.XHDTYPE, b"")
    return header + record + bytes(-len(record) % _BLOCK)
