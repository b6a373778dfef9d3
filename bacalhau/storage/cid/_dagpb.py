"""The two small protobuf messages of UnixFS, encoded by hand.

``PBNode``/``PBLink`` (the dag-pb codec) and UnixFS ``Data``. Encoding follows the byte
order Kubo and the JS importer produce (links before data; Hash, Name, Tsize in every link,
even when the name is empty or the size 0; UnixFS fields in tag order, ``blocksizes`` not
packed), because a CID is the hash of these exact bytes. Decoding is lenient about field
order and strict about lengths.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bacalhau.errors import InvalidContent

from ._cid import CID, decode_varint, encode_varint

__all__ = [
    "DataType",
    "PBLink",
    "PBNode",
    "UnixFSData",
    "decode_node",
    "decode_unixfs",
    "encode_file_leaf",
    "encode_node",
    "encode_unixfs",
]


class DataType(enum.IntEnum):
    """UnixFS ``Data.Type``."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    """A dag-pb link: the child's CID, its name (bytes, as on disk) and cumulative size."""

    cid: CID
    name: bytes
    tsize: int


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None


def _field_bytes(key: int, payload: bytes) -> bytes:
    return bytes((key,)) + encode_varint(len(payload)) + payload


def encode_link(cid: CID, name: bytes, tsize: int) -> bytes:
    """One ``PBNode.Links`` entry, key and length included."""
    body = b"".join(
        (
            b"\x0a",
            encode_varint(len(cid.binary)),
            cid.binary,
            b"\x12",
            encode_varint(len(name)),
            name,
            b"\x18",
            encode_varint(tsize),
        )
    )
    return b"\x12" + encode_varint(len(body)) + body


def encode_node(links: Iterable[PBLink], data: bytes) -> bytes:
    """A dag-pb block: every link first, then ``Data``."""
    parts = [encode_link(link.cid, link.name, link.tsize) for link in links]
    parts.append(_field_bytes(0x0A, data))
    return b"".join(parts)


def encode_unixfs(
    type_: DataType,
    *,
    data: bytes | None = None,
    filesize: int | None = None,
    blocksizes: Sequence[int] = (),
    hash_type: int | None = None,
    fanout: int | None = None,
) -> bytes:
    """A UnixFS ``Data`` message, fields in tag order."""
    parts = [b"\x08", encode_varint(int(type_))]
    if data is not None:
        parts.append(_field_bytes(0x12, data))
    if filesize is not None:
        parts += (b"\x18", encode_varint(filesize))
    for size in blocksizes:
        parts += (b"\x20", encode_varint(size))
    if hash_type is not None:
        parts += (b"\x28", encode_varint(hash_type))
    if fanout is not None:
        parts += (b"\x30", encode_varint(fanout))
    return b"".join(parts)


def encode_file_leaf(length: int) -> tuple[bytes, bytes]:
    """Prefix and suffix of a dag-pb File leaf holding a ``length``-byte chunk (so a
    256 KiB chunk need not be copied to be framed): ``prefix + chunk + suffix`` is the
    block."""
    size = encode_varint(length)
    if length:
        inner_len = 2 + 1 + len(size) + length + 1 + len(size)
        prefix = b"\x0a" + encode_varint(inner_len) + b"\x08\x02\x12" + size
    else:  # an empty chunk has no Data field
        inner_len = 2 + 1 + len(size)
        prefix = b"\x0a" + encode_varint(inner_len) + b"\x08\x02"
    return prefix, b"\x18" + size


def _fields(buf: bytes | memoryview, what: str) -> Iterable[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of a protobuf message: varints as int,
    length-delimited fields as memoryview slices."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    try:
        while pos < end:
            key, pos = decode_varint(view, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = decode_varint(view, pos)
                yield number, wire, value
            elif wire == 2:
                length, pos = decode_varint(view, pos)
                if pos + length > end:
                    raise ValueError("field runs past the end")
                yield number, wire, view[pos : pos + length]
                pos += length
            else:
                raise ValueError(f"unexpected wire type {wire}")
    except ValueError as exc:
        raise InvalidContent(f"malformed {what}: {exc}") from None


def decode_node(block: bytes | memoryview) -> PBNode:
    """Parse a dag-pb block; raises :class:`InvalidContent` when it is not one."""
    links: list[PBLink] = []
    data: bytes | None = None
    for number, wire, value in _fields(block, "dag-pb node"):
        if number == 2 and isinstance(value, memoryview):
            links.append(_decode_link(value))
        elif number == 1 and isinstance(value, memoryview):
            data = bytes(value)
        else:
            raise InvalidContent(f"malformed dag-pb node: unexpected field {number}/{wire}")
    return PBNode(tuple(links), data)


def _decode_link(buf: memoryview) -> PBLink:
    cid: CID | None = None
    name = b""
    tsize = 0
    for number, _wire, value in _fields(buf, "dag-pb link"):
        if number == 1 and isinstance(value, memoryview):
            cid = CID(bytes(value))
        elif number == 2 and isinstance(value, memoryview):
            name = bytes(value)
        elif number == 3 and isinstance(value, int):
            tsize = value
        else:
            raise InvalidContent(f"malformed dag-pb link: unexpected field {number}")
    if cid is None:
        raise InvalidContent("malformed dag-pb link: no Hash")
    return PBLink(cid, name, tsize)


def decode_unixfs(data: bytes | None) -> UnixFSData:
    """Parse a UnixFS ``Data`` message (the ``Data`` of a dag-pb node)."""
    if data is None:
        raise InvalidContent("dag-pb node without UnixFS data")
    type_: int | None = None
    content: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    hash_type: int | None = None
    fanout: int | None = None
    for number, _wire, value in _fields(data, "UnixFS data"):
        if isinstance(value, int):
            if number == 1:
                type_ = value
            elif number == 3:
                filesize = value
            elif number == 4:
                blocksizes.append(value)
            elif number == 5:
                hash_type = value
            elif number == 6:
                fanout = value
            # 7 (mode) and other varints: not used when exporting
        elif number == 2:
            content = bytes(value)
        elif number == 4:  # packed blocksizes, accepted from other writers
            pos = 0
            while pos < len(value):
                size, pos = decode_varint(value, pos)
                blocksizes.append(size)
        # 8 (mtime) and unknown length-delimited fields are ignored
    try:
        kind = DataType(type_ if type_ is not None else -1)
    except ValueError:
        raise InvalidContent(f"unknown UnixFS type {type_}") from None
    return UnixFSData(kind, content, filesize, tuple(blocksizes), hash_type, fanout)
