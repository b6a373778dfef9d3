"""HAMT-sharded UnixFS directories (the layout Kubo and the JS importer use above the
sharding threshold): murmur3-x64-64 of each name, fanout 256, one hash byte per level."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bacalhau.errors import InvalidContent

from ._dagpb import DataType, PBLink, encode_node, encode_unixfs

__all__ = ["FANOUT", "MURMUR3_X64_64", "build_shard", "murmur3_x64_64"]

#: Multicodec of the name hash, written in every shard node.
MURMUR3_X64_64 = 0x22
FANOUT = 256
#: Length of a link name's hash prefix (two hex digits for 256 buckets): a link named by
#: the prefix alone leads to a sub-shard; a longer one is an entry (prefix + its name).
PREFIX_LEN = 2
_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def murmur3_x64_64(data: bytes) -> bytes:
    """The first half (h1) of MurmurHash3_x64_128 with seed 0, as 8 big-endian bytes."""
    length = len(data)
    h1 = h2 = 0
    nblocks = length // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        k2 = (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[16 * nblocks :]
    k1 = int.from_bytes(tail[:8], "little") if tail else 0
    k2 = int.from_bytes(tail[8:], "little") if len(tail) > 8 else 0
    if k2:
        h2 ^= (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK
    if tail:
        h1 ^= (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    return h1.to_bytes(8, "big")


#: Stores a finished block and returns (its link target, its cumulative size).
EmitBlock = Callable[[bytes], PBLink]


def build_shard(entries: Sequence[PBLink], emit: EmitBlock) -> PBLink:
    """Build the shard for a directory's ``entries`` (links named by entry name); returns the
    root's link (empty name). ``emit`` hashes and stores each shard node and returns a link to
    it whose ``tsize`` is the node's length plus its links' sizes."""
    hashed = [(murmur3_x64_64(link.name), link) for link in entries]
    return _build_level(hashed, 0, emit)


def _build_level(hashed: list[tuple[bytes, PBLink]], depth: int, emit: EmitBlock) -> PBLink:
    if depth >= 8:
        raise InvalidContent("HAMT: two names with the same 64-bit hash")
    buckets: dict[int, list[tuple[bytes, PBLink]]] = {}
    for item in hashed:
        buckets.setdefault(item[0][depth], []).append(item)
    links: list[PBLink] = []
    bitfield = 0
    for index in sorted(buckets):
        bitfield |= 1 << index
        members = buckets[index]
        prefix = b"%02X" % index
        if len(members) == 1:
            link = members[0][1]
            links.append(PBLink(link.cid, prefix + link.name, link.tsize))
        else:
            child = _build_level(members, depth + 1, emit)
            links.append(PBLink(child.cid, prefix, child.tsize))
    field = bitfield.to_bytes(FANOUT // 8, "big").lstrip(b"\x00")
    data = encode_unixfs(DataType.HAMT_SHARD, data=field, hash_type=MURMUR3_X64_64, fanout=FANOUT)
    return emit(encode_node(links, data))
