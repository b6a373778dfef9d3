"""CAR v1 files (``ipfs dag export`` / ``ipfs dag import``), streamed both ways.

A CAR v1 is a varint-length-prefixed DAG-CBOR header ``{"roots": [CID...], "version": 1}``
followed by sections, each ``varint(len(cid) + len(block)) || cid || block``. Blocks are
written depth-first from each root, each once, as ``ipfs dag export`` does; on reading,
every block is verified against its CID before anything else sees it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from bacalhau.errors import InvalidCID, InvalidContent

from ._cid import CID, DAG_PB, decode_varint, encode_varint
from ._dagpb import decode_node

__all__ = ["CarImport", "CarReader", "import_car", "write_car"]

#: The largest section accepted: blocks are at most a few MiB (bitswap refuses > 4 MiB).
MAX_SECTION: Final = 8 << 20
#: A header is a few CIDs; anything larger is not a CAR this store wrote or can use.
_MAX_HEADER: Final = 1 << 20
_CID_TAG: Final = 42


class _BlockGetter(Protocol):
    def get(self, cid: CID) -> bytes: ...


class _BlockPutter(Protocol):
    def put(self, cid: CID, data: bytes) -> None: ...

    def pin(self, cid: CID) -> None: ...


# -- the DAG-CBOR subset of the header ----------------------------------------------------


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes(((major << 5) | value,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes(((major << 5) | extra,)) + value.to_bytes(size, "big")
    raise ValueError("CBOR value too large")


def encode_header(roots: Sequence[CID]) -> bytes:
    """The DAG-CBOR header (map keys in canonical order: length first, then bytes)."""
    parts = [b"\xa2", _cbor_head(3, 5), b"roots", _cbor_head(4, len(roots))]
    for root in roots:
        link = b"\x00" + root.binary
        parts += (b"\xd8\x2a", _cbor_head(2, len(link)), link)
    parts += (_cbor_head(3, 7), b"version", b"\x01")
    return b"".join(parts)


class _Cbor:
    """Just enough of a CBOR decoder for a CAR header: ints, strings, arrays, maps, tags."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        if info in (24, 25, 26, 27):
            return major, int.from_bytes(self._take(1 << (info - 24)), "big")
        raise ValueError("indefinite lengths are not DAG-CBOR")

    def value(self, depth: int = 0) -> object:
        if depth > 8:
            raise ValueError("nested too deep")
        major, arg = self._head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self._take(arg)
        if major == 3:
            return self._take(arg).decode("utf-8")
        if major == 4:
            return [self.value(depth + 1) for _ in range(arg)]
        if major == 5:
            out: dict[object, object] = {}
            for _ in range(arg):
                key = self.value(depth + 1)
                out[key] = self.value(depth + 1)
            return out
        if major == 6:
            inner = self.value(depth + 1)
            if arg != _CID_TAG or not isinstance(inner, bytes) or inner[:1] != b"\x00":
                raise ValueError(f"unexpected tag {arg}")
            return CID(inner[1:])
        if major == 7 and arg in (20, 21, 22):
            return {20: False, 21: True, 22: None}[arg]
        raise ValueError("unsupported CBOR item")


# -- reading ------------------------------------------------------------------------------


def _read_varint(stream: BinaryIO) -> int | None:
    """A varint from the stream, or None at a clean end of stream."""
    raw = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if raw:
                raise InvalidContent("CAR: truncated section length")
            return None
        raw += byte
        if byte[0] < 0x80:
            return decode_varint(bytes(raw))[0]
        if len(raw) >= 9:
            raise InvalidContent("CAR: overlong varint")


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            raise InvalidContent(f"CAR: truncated {what}")
        data += more
    return data


def _split_section(section: bytes) -> tuple[CID, bytes]:
    try:
        if section[:2] == b"\x12\x20":
            end = 34
        else:
            _version, pos = decode_varint(section, 0)
            _codec, pos = decode_varint(section, pos)
            _code, pos = decode_varint(section, pos)
            length, pos = decode_varint(section, pos)
            end = pos + length
        return CID(section[:end]), section[end:]
    except (ValueError, InvalidCID) as exc:
        raise InvalidContent(f"CAR: a section does not start with a CID ({exc})") from None


class CarReader:
    """Reads a CAR v1 stream: ``roots`` from the header, then :meth:`blocks` yields
    ``(cid, bytes)``, each verified (:class:`~bacalhau.errors.CorruptBlock` if not)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        length = _read_varint(stream)
        if length is None or length == 0 or length > _MAX_HEADER:
            raise InvalidContent("not a CAR file: no header", hint="pass a CAR v1 file")
        try:
            header = _Cbor(_read_exact(stream, length, "header")).value()
        except (ValueError, UnicodeDecodeError, InvalidCID) as exc:
            raise InvalidContent(f"not a CAR file: bad header ({exc})") from None
        if not isinstance(header, dict) or header.get("version") != 1:
            version = header.get("version") if isinstance(header, dict) else None
            raise InvalidContent(
                f"unsupported CAR version {version!r}",
                hint="export a CAR v1 (`ipfs dag export` writes v1)",
            )
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise InvalidContent("not a CAR file: header roots are not CIDs")
        self.roots: list[CID] = [r for r in roots if isinstance(r, CID)]

    def blocks(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            length = _read_varint(self._stream)
            if length is None:
                return
            if length > MAX_SECTION:
                raise InvalidContent(f"CAR: a section of {length} bytes is over the limit")
            cid, block = _split_section(_read_exact(self._stream, length, "section"))
            cid.verify(block)
            yield cid, block


@dataclass(frozen=True, slots=True)
class CarImport:
    roots: list[CID]
    blocks: int
    bytes: int


def import_car(stream: BinaryIO, store: _BlockPutter, *, pin_roots: bool = True) -> CarImport:
    """Store every block of a CAR (each verified) and, like ``ipfs dag import``, pin its
    roots. A corrupt block stops the import with :class:`~bacalhau.errors.CorruptBlock`;
    blocks before it stay stored, unpinned."""
    reader = CarReader(stream)
    count = total = 0
    for cid, block in reader.blocks():
        store.put(cid, block)
        count += 1
        total += len(block)
    if pin_roots:
        for root in reader.roots:
            store.pin(root)
    return CarImport(reader.roots, count, total)


# -- writing ------------------------------------------------------------------------------


def write_car(out: BinaryIO, roots: Sequence[CID], source: _BlockGetter) -> int:
    """Write the DAGs under ``roots`` as a CAR v1 (depth-first, each block once); returns
    the number of blocks. Missing blocks raise :class:`~bacalhau.errors.BlockNotFound`."""
    header = encode_header(roots)
    out.write(encode_varint(len(header)) + header)
    seen: set[bytes] = set()
    stack = list(reversed(roots))
    count = 0
    while stack:
        cid = stack.pop()
        if cid.binary in seen:
            continue
        seen.add(cid.binary)
        block = source.get(cid)
        out.write(encode_varint(len(cid.binary) + len(block)))
        out.write(cid.binary)
        out.write(block)
        count += 1
        if cid.codec == DAG_PB:
            stack.extend(reversed([link.cid for link in decode_node(block).links]))
    return count
