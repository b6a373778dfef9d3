"""Node keys on disk, signing and verifying."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, InvalidRequest, PermissionDenied
from bacalhau.identity import NodeFiles, NodeIdentity, verify


def test_load_or_create_creates_a_private_pem_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    first = NodeIdentity.load_or_create(data_dir)
    key_file = NodeFiles.in_dir(data_dir).node_key
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = NodeIdentity.load_or_create(data_dir)
    assert again.node_id == first.node_id
    assert again.data_dir == data_dir
    assert NodeIdentity.load(data_dir).node_id == first.node_id


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    NodeIdentity.load_or_create(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]


async def test_concurrent_creation_yields_one_identity(tmp_path: Path) -> None:
    def create() -> str:
        return NodeIdentity.load_or_create(tmp_path / "shared").node_id

    ids = await asyncio.gather(*(asyncio.to_thread(create) for _ in range(8)))
    assert len(set(ids)) == 1


def test_load_refuses_missing_world_readable_and_foreign_keys(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration) as missing:
        NodeIdentity.load(tmp_path / "nothing")
    assert missing.value.hint

    NodeIdentity.load_or_create(tmp_path / "open")
    os.chmod(tmp_path / "open" / "node.key", 0o644)
    with pytest.raises(InvalidConfiguration) as open_key:
        NodeIdentity.load(tmp_path / "open")
    assert "chmod 600" in open_key.value.hint

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "node.key").write_bytes(b"not a key")
    os.chmod(garbage / "node.key", 0o600)
    with pytest.raises(InvalidConfiguration):
        NodeIdentity.load(garbage)


def test_load_refuses_a_non_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    tmp_path.joinpath("node.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    os.chmod(tmp_path / "node.key", 0o600)
    with pytest.raises(InvalidConfiguration, match="not an ed25519 key"):
        NodeIdentity.load(tmp_path)


def test_save_then_load(tmp_path: Path) -> None:
    identity = NodeIdentity.generate()
    identity.save(tmp_path)
    assert NodeIdentity.load(tmp_path).node_id == identity.node_id


def test_sign_and_verify() -> None:
    alice, bob = NodeIdentity.generate(), NodeIdentity.generate()
    data = b"bid for e-1"
    signature = alice.sign(data)
    assert len(signature) == 64
    verify(alice.node_id, data, signature)  # does not raise
    with pytest.raises(PermissionDenied):
        verify(bob.node_id, data, signature)
    with pytest.raises(PermissionDenied):
        verify(alice.node_id, data + b"!", signature)
    with pytest.raises(PermissionDenied):
        verify(alice.node_id, data, signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(PermissionDenied):
        verify("not-a-node-id", data, signature)


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(InvalidRequest):
        NodeIdentity.from_seed(b"short")
