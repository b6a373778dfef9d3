"""libp2p-style peer IDs for ed25519 keys.

A node ID is the libp2p peer ID of the node's ed25519 public key (libp2p ``peer-ids`` spec):

1. wrap the raw 32-byte key in the protobuf ``PublicKey{Type: Ed25519 (1), Data: key}``,
   canonically encoded as ``08 01 12 20 <key>`` (36 bytes);
2. since that is at most 42 bytes, take its *identity* multihash: ``00 24 <36 bytes>``;
3. encode the 38 bytes in base58btc: ``12D3KooW...``.

The ID therefore contains the key itself: it is self-certifying, and
:func:`public_key_from_peer_id` recovers the key without any lookup.

Peer IDs are case-sensitive, so they cannot be DNS names. :func:`node_dns_name` derives one
that can (multibase base32 of the same multihash, 62 lower-case characters, one DNS label);
node certificates carry it so a client can pin the node it expects through TLS name checks.

The multihash framing is a fixed 2-byte prefix for this one key type, so it is written out here
rather than importing a general multiformats table on every start (the tests cross-check it
against the ``multiformats`` package).
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bacalhau.errors import InvalidRequest

#: protobuf ``PublicKey{Type: Ed25519, Data: <32 bytes>}`` minus the key: field 1 varint 1,
#: field 2 length-delimited 32.
_ED25519_PUBKEY_PB_PREFIX = b"\x08\x01\x12\x20"
#: identity multihash (code 0x00) of a 36-byte digest.
_IDENTITY_MULTIHASH_PREFIX = b"\x00\x24"
_PEER_ID_PREFIX = _IDENTITY_MULTIHASH_PREFIX + _ED25519_PUBKEY_PB_PREFIX
_PEER_ID_BYTES = len(_PEER_ID_PREFIX) + 32

#: URI scheme of the node ID in certificates: ``bacalhau://node/<peer id>``.
NODE_URI_PREFIX = "bacalhau://node/"

_HINT = "a node ID is the peer ID of an ed25519 key and looks like 12D3KooW... (52 characters)"


def peer_id_from_public_key(key: Ed25519PublicKey) -> str:
    """The libp2p peer ID (base58btc identity multihash) of an ed25519 public key."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base58.b58encode(_PEER_ID_PREFIX + raw).decode("ascii")


def peer_id_bytes(peer_id: str) -> bytes:
    """The multihash bytes behind a peer ID, after checking it is an ed25519 peer ID.

    Raises :class:`bacalhau.errors.InvalidRequest` for anything else (other key types,
    non-canonical encodings, typos).
    """
    return _decode(peer_id)


@lru_cache(maxsize=4096)
def _decode(peer_id: str) -> bytes:
    # Cached: the same few peers sign every message, and base58 decoding is the costly part.
    if not isinstance(peer_id, str) or not peer_id:
        raise InvalidRequest("empty node ID", hint=_HINT, component="Identity")
    try:
        raw = base58.b58decode(peer_id.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidRequest(
            f"node ID {peer_id!r} is not base58", hint=_HINT, component="Identity"
        ) from None
    if len(raw) != _PEER_ID_BYTES or not raw.startswith(_PEER_ID_PREFIX):
        raise InvalidRequest(
            f"node ID {peer_id!r} is not the peer ID of an ed25519 key",
            hint=_HINT,
            component="Identity",
        )
    return raw


@lru_cache(maxsize=4096)
def public_key_from_peer_id(peer_id: str) -> Ed25519PublicKey:
    """Recover the ed25519 public key embedded in a peer ID (no lookup needed)."""
    raw = _decode(peer_id)
    return Ed25519PublicKey.from_public_bytes(raw[len(_PEER_ID_PREFIX) :])


def is_peer_id(text: str) -> bool:
    """True when ``text`` is a well-formed ed25519 peer ID."""
    try:
        _decode(text)
    except InvalidRequest:
        return False
    return True


def node_dns_name(peer_id: str) -> str:
    """A DNS name standing for the node: ``b`` + base32 (lower case, unpadded) of its multihash.

    This is the multibase base32 form of the peer ID's multihash: 62 characters from
    ``[a-z2-7]``, a valid single DNS label (at most 63), and unique per node. Node
    certificates carry it as a DNS SAN and clients pin a node by using it as the TLS target
    name.
    """
    raw = _decode(peer_id)
    return "b" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def peer_id_from_dns_name(name: str) -> str:
    """Inverse of :func:`node_dns_name`."""
    if not name.startswith("b"):
        raise InvalidRequest(f"{name!r} is not a node DNS name", hint=_HINT, component="Identity")
    body = name[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except binascii.Error:
        raise InvalidRequest(
            f"{name!r} is not a node DNS name", hint=_HINT, component="Identity"
        ) from None
    peer_id = base58.b58encode(raw).decode("ascii")
    _decode(peer_id)
    return peer_id


def node_uri(peer_id: str) -> str:
    """The URI SAN naming a node in its certificate: ``bacalhau://node/<peer id>``."""
    _decode(peer_id)
    return NODE_URI_PREFIX + peer_id


def peer_id_from_node_uri(uri: str) -> str:
    """The peer ID in a ``bacalhau://node/<peer id>`` URI (checked)."""
    if not uri.startswith(NODE_URI_PREFIX):
        raise InvalidRequest(f"{uri!r} is not a node URI", hint=_HINT, component="Identity")
    peer_id = uri[len(NODE_URI_PREFIX) :]
    _decode(peer_id)
    return peer_id
