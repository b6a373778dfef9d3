"""Peer IDs follow the libp2p spec, round-trip, and reject anything that is not one."""

from __future__ import annotations

import base64

import base58
import pytest
from multiformats import multibase, multihash

from bacalhau.errors import InvalidRequest
from bacalhau.identity import (
    NodeIdentity,
    is_peer_id,
    node_dns_name,
    node_uri,
    peer_id_bytes,
    peer_id_from_dns_name,
    peer_id_from_node_uri,
    peer_id_from_public_key,
    public_key_from_peer_id,
)

# Cross-implementation vector (rust-libp2p keypair_protobuf_roundtrip_ed25519 and the libp2p
# peer-ids spec): this ed25519 seed has the public key 1ed1e8fa...e27e and the peer ID below.
SPEC_SEED = bytes.fromhex("7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d")
SPEC_PUBKEY_PROTOBUF = bytes.fromhex(
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def test_known_vector() -> None:
    identity = NodeIdentity.from_seed(SPEC_SEED)
    assert identity.node_id == SPEC_PEER_ID
    # The multihash is the identity hash of the protobuf-encoded public key.
    raw = peer_id_bytes(identity.node_id)
    assert multihash.unwrap(raw) == SPEC_PUBKEY_PROTOBUF
    assert multihash.wrap(SPEC_PUBKEY_PROTOBUF, "identity") == raw
    assert multibase.encode(raw, "base58btc") == "z" + SPEC_PEER_ID


def test_generated_ids_match_multiformats_and_round_trip() -> None:
    for _ in range(20):
        identity = NodeIdentity.generate()
        assert identity.node_id.startswith("12D3KooW")
        assert len(identity.node_id) == 52
        raw = multihash.wrap(SPEC_PUBKEY_PROTOBUF[:4] + _raw_public(identity), "identity")
        assert base58.b58encode(raw).decode() == identity.node_id
        key = public_key_from_peer_id(identity.node_id)
        assert peer_id_from_public_key(key) == identity.node_id
        assert key == identity.public_key


def _raw_public(identity: NodeIdentity) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return identity.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_dns_name_is_a_dns_label_and_round_trips() -> None:
    identity = NodeIdentity.from_seed(SPEC_SEED)
    name = node_dns_name(identity.node_id)
    assert len(name) <= 63
    assert name == name.lower()
    assert all(c.isalnum() for c in name)
    # It is the multibase base32 form of the peer ID's multihash.
    assert name == multibase.encode(peer_id_bytes(identity.node_id), "base32")
    assert peer_id_from_dns_name(name) == identity.node_id
    raw = base64.b32decode(name[1:].upper() + "=" * (-len(name[1:]) % 8))
    assert raw == peer_id_bytes(identity.node_id)


def test_dns_names_differ_per_node() -> None:
    names = {node_dns_name(NodeIdentity.generate().node_id) for _ in range(50)}
    assert len(names) == 50


def test_node_uri_round_trip() -> None:
    node_id = NodeIdentity.generate().node_id
    assert node_uri(node_id) == f"bacalhau://node/{node_id}"
    assert peer_id_from_node_uri(node_uri(node_id)) == node_id


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "n-2b8d1c3e-0000-4000-8000-000000000000",  # Bacalhau's default node name form
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p",  # one character short
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pqq",  # one too many
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p0",  # 0 is not base58
        # An RSA-style peer ID (sha2-256 multihash): valid libp2p, but not an ed25519 key.
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq\u00e9",
    ],
)
def test_malformed_peer_ids_are_refused(bad: str) -> None:
    assert not is_peer_id(bad)
    with pytest.raises(InvalidRequest):
        public_key_from_peer_id(bad)
    with pytest.raises(InvalidRequest):
        node_dns_name(bad)


def test_non_canonical_key_encoding_is_refused() -> None:
    # Same key, protobuf fields in the other order: a second ID for one key must not exist.
    raw = peer_id_bytes(SPEC_PEER_ID)
    key = raw[6:]
    swapped = b"\x00\x24" + b"\x12\x20" + key + b"\x08\x01"
    assert not is_peer_id(base58.b58encode(swapped).decode())


def test_bad_dns_and_uri_forms_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        peer_id_from_dns_name("localhost")
    with pytest.raises(InvalidRequest):
        peer_id_from_dns_name("b" + "a" * 61)
    with pytest.raises(InvalidRequest):
        peer_id_from_node_uri("https://node/" + SPEC_PEER_ID)
    with pytest.raises(InvalidRequest):
        peer_id_from_node_uri("bacalhau://node/nope")
