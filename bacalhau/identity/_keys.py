"""A node's ed25519 identity: its key, its node ID, signing and verifying."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from bacalhau.errors import InvalidConfiguration, InvalidRequest, PermissionDenied
from bacalhau.identity._files import NodeFiles, read_private, write_private
from bacalhau.identity._peer_id import peer_id_from_public_key, public_key_from_peer_id

_KEY_HINT = "remove the file to let the node create a new identity (its node ID will change)"


class NodeIdentity:
    """A node's ed25519 key pair and the node ID derived from it.

    The private key never leaves this object except through :meth:`private_key` (used by the
    cluster CA when it issues the node's certificate) and the key file.
    """

    __slots__ = ("_key", "data_dir", "node_id", "public_key")

    def __init__(self, key: Ed25519PrivateKey, *, data_dir: Path | None = None) -> None:
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        self.node_id: str = peer_id_from_public_key(self.public_key)
        #: The data directory the key was loaded from, if any.
        self.data_dir = data_dir

    def __repr__(self) -> str:
        return f"NodeIdentity({self.node_id})"

    @classmethod
    def generate(cls) -> NodeIdentity:
        """A fresh identity that lives only in memory."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeIdentity:
        """The identity of a 32-byte ed25519 seed (deterministic; for tests and imports)."""
        if len(seed) != 32:
            raise InvalidRequest("an ed25519 seed is 32 bytes", component="Identity")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> NodeIdentity:
        """Load ``<data_dir>/node.key``; raise :class:`InvalidConfiguration` if unusable."""
        files = NodeFiles.in_dir(data_dir)
        pem = read_private(
            files.node_key,
            what="node key",
            hint="start the node once to create its identity",
        )
        return cls(_parse_key(pem, files.node_key), data_dir=files.data_dir)

    @classmethod
    def load_or_create(
        cls, data_dir: str | os.PathLike[str], *, certified_needs_key: bool = False
    ) -> NodeIdentity:
        """Load the node key from ``data_dir``, creating it (mode 0600) on first use.

        Safe against two processes starting at once: only one key is ever written and both
        end up with it. ``certified_needs_key``: a data dir that holds a node certificate but
        no key lost its node's identity; refuse rather than write a new key (a node starting
        would fail its certificate check anyway, having quietly replaced the file).
        """
        files = NodeFiles.in_dir(data_dir)
        if certified_needs_key and not files.node_key.exists() and files.tls_cert.exists():
            raise InvalidConfiguration(
                f"node key {files.node_key} is missing, but {files.tls_cert} certifies a node "
                "for this data dir: the node's identity (its key) is lost",
                hint="restore node.key from a backup to start this node again; to start it as "
                "a new node instead, remove tls.crt and tls.key and certify it again "
                "(`bacalhau ca issue`, or a join token)",
                component="Identity",
            )
        if not files.node_key.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            if write_private(files.node_key, pem, exclusive=True):
                return cls(key, data_dir=files.data_dir)
        return cls.load(data_dir)

    def save(self, data_dir: str | os.PathLike[str]) -> None:
        """Write this identity's key to ``<data_dir>/node.key`` (mode 0600), replacing any."""
        files = NodeFiles.in_dir(data_dir)
        pem = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        write_private(files.node_key, pem)
        self.data_dir = files.data_dir

    def sign(self, data: bytes) -> bytes:
        """An ed25519 signature of ``data`` (64 bytes)."""
        return self._key.sign(data)

    def private_key(self) -> Ed25519PrivateKey:
        return self._key


def _parse_key(pem: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidConfiguration(
            f"node key {path} is not an unencrypted PEM private key", hint=_KEY_HINT
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidConfiguration(f"node key {path} is not an ed25519 key", hint=_KEY_HINT)
    return key


def verify(peer_id: str, data: bytes, signature: bytes) -> None:
    """Check that ``signature`` is ``peer_id``'s signature of ``data``.

    The public key comes out of the peer ID itself. Raises
    :class:`bacalhau.errors.PermissionDenied` when the signature does not verify or the peer
    ID is malformed.
    """
    try:
        key = public_key_from_peer_id(peer_id)
    except InvalidRequest as e:
        raise PermissionDenied(f"cannot verify a signature by {peer_id!r}: {e.message}") from None
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise PermissionDenied(
            f"signature does not verify for node {peer_id}",
            hint="the message was not signed by the node it claims to come from",
        ) from None
