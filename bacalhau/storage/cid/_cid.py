"""CIDs and multihashes, built from bytes without a codec table.

A CID is kept in its binary form (what a dag-pb link holds); the text form is derived on
demand. Building one is a few bytes of prefix plus a SHA-256 digest, cheap enough for the
importer's per-block path.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

import base58

from bacalhau.errors import CorruptBlock, InvalidCID

__all__ = [
    "CID",
    "DAG_PB",
    "IDENTITY",
    "RAW",
    "SHA2_256",
    "decode_varint",
    "encode_varint",
]

#: Multicodec codes this store understands.
DAG_PB: Final = 0x70
RAW: Final = 0x55
#: Multihash function codes.
SHA2_256: Final = 0x12
IDENTITY: Final = 0x00

_SHA256_PREFIX: Final = b"\x12\x20"
_V1_DAG_PB: Final = b"\x01\x70"
_V1_RAW: Final = b"\x01\x55"
# Identity multihashes inline the block; cap them like Kubo does, so a CID stays small.
_MAX_IDENTITY_LEN: Final = 128


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError("varint of a negative number")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode an unsigned LEB128 at ``offset``; returns (value, offset after it).

    Raises ``ValueError`` when the data ends first or the varint is longer than 9 bytes
    (the multiformats limit, which also bounds every length this package reads).
    """
    value = 0
    shift = 0
    for i in range(offset, min(len(data), offset + 9)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("truncated or overlong varint")


class CID:
    """A content identifier (v0 or v1), immutable and hashable by its binary form.

    Only sha2-256 and identity multihashes are accepted, since those are the only ones this
    store can verify; the codec may be any, but only dag-pb and raw blocks are interpreted.
    """

    __slots__ = ("_bytes", "_codec", "_digest_start", "_hash_code", "_mh_start", "_version")

    def __init__(self, binary: bytes) -> None:
        """Parse a binary CID; raises :class:`InvalidCID` when it is not one."""
        self._bytes = bytes(binary)
        try:
            if len(binary) == 34 and binary[:2] == _SHA256_PREFIX:
                self._version, self._codec, self._hash_code = 0, DAG_PB, SHA2_256
                self._mh_start, self._digest_start = 0, 2
                return
            version, pos = decode_varint(binary, 0)
            if version != 1:
                raise ValueError(f"unsupported CID version {version}")
            self._version = 1
            self._codec, pos = decode_varint(binary, pos)
            self._mh_start = pos
            self._hash_code, pos = decode_varint(binary, pos)
            length, pos = decode_varint(binary, pos)
        except ValueError as exc:
            raise InvalidCID(f"not a CID: {binary.hex()} ({exc})") from None
        if len(binary) - pos != length:
            raise InvalidCID(f"not a CID: {binary.hex()} (digest length does not match)")
        if self._hash_code == SHA2_256 and length != 32:
            raise InvalidCID(f"not a CID: {binary.hex()} (sha2-256 digest must be 32 bytes)")
        if self._hash_code == IDENTITY and length > _MAX_IDENTITY_LEN:
            raise InvalidCID(f"identity CID longer than {_MAX_IDENTITY_LEN} bytes")
        if self._hash_code not in (SHA2_256, IDENTITY):
            raise InvalidCID(
                f"unsupported multihash function 0x{self._hash_code:x}",
                hint="this store verifies sha2-256 (and identity) CIDs only",
            )
        self._digest_start = pos

    # -- construction -------------------------------------------------------------------

    @classmethod
    def for_block(cls, data: bytes | memoryview, *, codec: int, version: int) -> CID:
        """The sha2-256 CID of ``data``."""
        return cls.from_digest(hashlib.sha256(data).digest(), codec=codec, version=version)

    @classmethod
    def from_digest(cls, digest: bytes, *, codec: int, version: int) -> CID:
        """A CID from a SHA-256 digest, without parsing (the importer's fast path)."""
        self = object.__new__(cls)
        if version == 0:
            if codec != DAG_PB:
                raise InvalidCID("a CIDv0 is always dag-pb (raw leaves need CIDv1)")
            self._bytes = _SHA256_PREFIX + digest
            self._mh_start, self._digest_start = 0, 2
        else:
            prefix = (
                _V1_DAG_PB
                if codec == DAG_PB
                else _V1_RAW
                if codec == RAW
                else b"\x01" + encode_varint(codec)
            )
            self._bytes = prefix + _SHA256_PREFIX + digest
            self._mh_start, self._digest_start = len(prefix), len(prefix) + 2
        self._version, self._codec, self._hash_code = version, codec, SHA2_256
        return self

    @classmethod
    def parse(cls, text: str, *, field: str = "") -> CID:
        """Parse the text form: CIDv0 (``Qm…`` base58btc) or CIDv1 in base32 (``b…``) or
        base58btc (``z…``). ``field`` names the culprit in the error."""
        text = text.strip()
        try:
            if len(text) == 46 and text.startswith("Qm"):
                binary = base58.b58decode(text)
            elif text[:1] in ("b", "B"):
                body = text[1:].upper()
                binary = base64.b32decode(body + "=" * (-len(body) % 8))
            elif text[:1] == "z":
                binary = base58.b58decode(text[1:])
            else:
                raise ValueError("unknown multibase")
        except ValueError:
            raise InvalidCID(f"not a CID: {text!r}", field=field) from None
        try:
            cid = cls(binary)
        except InvalidCID as exc:
            raise InvalidCID(f"not a CID: {text!r} ({exc.message})", field=field) from None
        if cid.version == 0 and not text.startswith("Qm"):
            raise InvalidCID(f"not a CID: {text!r}", field=field)
        return cid

    # -- properties ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def codec(self) -> int:
        return self._codec

    @property
    def hash_code(self) -> int:
        return self._hash_code

    @property
    def digest(self) -> bytes:
        return self._bytes[self._digest_start :]

    @property
    def multihash(self) -> bytes:
        """The multihash part (what a block is stored under: the same bytes under a v0 and
        a v1 CID are one block)."""
        return self._bytes[self._mh_start :]

    def __bytes__(self) -> bytes:
        return self._bytes

    @property
    def binary(self) -> bytes:
        """The binary form, as held in a dag-pb link and a CAR section."""
        return self._bytes

    def __str__(self) -> str:
        if self._version == 0:
            return base58.b58encode(self._bytes).decode("ascii")
        return "b" + base64.b32encode(self._bytes).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return f"CID({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def to_v1(self) -> CID:
        """The same block named by a CIDv1."""
        if self._version == 1:
            return self
        return CID.from_digest(self.digest, codec=DAG_PB, version=1)

    def verify(self, data: bytes | bytearray | memoryview) -> None:
        """Raise :class:`CorruptBlock` unless ``data`` hashes to this CID."""
        if self._hash_code == SHA2_256:
            ok = hashlib.sha256(data).digest() == self.digest
        else:
            ok = bytes(data) == self.digest
        if not ok:
            raise CorruptBlock(f"block {self} does not match its CID", cid=str(self))
