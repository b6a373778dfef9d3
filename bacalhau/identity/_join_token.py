"""Joining a cluster with a shared token (Bacalhau's ``Orchestrator.Auth.Token`` and
``Compute.Auth.Token``), without giving up mutual TLS.

Bacalhau's nodes prove they belong to a cluster by a shared token. Ours prove it with a
certificate from the cluster CA, which a compute node can get in two ways: ``bacalhau ca
issue`` run by the operator, or by joining with the token. Joining works like this:

- Both sides derive the same *join CA* from the token: a P-256 key made from the token by
  scrypt (slow on purpose: the join CA signs what a stranger can see, so a weak token must not
  be cheap to guess offline), and a certificate for it. The join CA may sign leaf
  certificates only (path length 0).
- A requester with a token also trusts the join CA, and presents a second certificate, signed
  by it, to a client asking for :data:`JOIN_SERVER_NAME` by SNI.
- A compute node without a certificate makes a TLS key, signs itself a client certificate
  with the join CA naming ``bacalhau://join/<its node ID>``, dials a seed asking for
  :data:`JOIN_SERVER_NAME`, and trusts only the join CA. The handshake succeeds only if both
  sides hold the same token. It then asks the requester for a cluster certificate for its TLS
  key, proving it holds its node ID's identity key by signing that TLS key.

A certificate the join CA signed names a node only for the Join call: everywhere else a
caller is a node only if the cluster CA itself signed its certificate
(:func:`bacalhau.transport` refuses the others), so a token holder can add its own node to
the cluster but never pass itself off as another.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bacalhau.errors import InvalidConfiguration

__all__ = [
    "JOIN_CA_COMMON_NAME",
    "JOIN_SERVER_NAME",
    "JOIN_URI_PREFIX",
    "MIN_TOKEN_LENGTH",
    "JoinAuthority",
    "join_proof_payload",
    "spki_der",
]

#: The TLS name a joining node asks for (SNI) and pins: the requester answers it with the
#: certificate its join CA signed. ``.invalid`` never resolves, so no real host has it.
JOIN_SERVER_NAME = "join.bacalhau.invalid"
#: The URI SAN of a joining node's client certificate (never the cluster's ``bacalhau://node/``).
JOIN_URI_PREFIX = "bacalhau://join/"
#: The join CA's common name: a certificate this CA signed is never a node's certificate.
JOIN_CA_COMMON_NAME = "Bacalhau join-token CA"
#: Shorter tokens are accepted (Bacalhau has no minimum) but warned about.
MIN_TOKEN_LENGTH = 16

# scrypt at n=2**15, r=8 costs about 30 MB and tens of milliseconds once per start; fixed
# parameters and salt make every node derive the same key from the same token.
_SCRYPT = {"length": 32, "n": 2**15, "r": 8, "p": 1}
_SALT = b"bacalhau join token v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# Fixed, so that every node builds the same certificate for the same key.
_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


def join_proof_payload(tls_public_key_der: bytes) -> bytes:
    """What a joining node signs with its identity key: the TLS key it asks a certificate
    for (its SubjectPublicKeyInfo, DER), so nobody can get a certificate for another node ID."""
    return b"bacalhau join: certify this TLS key\n" + tls_public_key_der


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """A public key as DER SubjectPublicKeyInfo."""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class JoinAuthority:
    """The join CA a token derives (see the module docstring)."""

    __slots__ = ("_key", "certificate")

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def from_token(cls, token: str) -> JoinAuthority:
        """The join CA of ``token``; refuses an empty token."""
        if not token:
            raise InvalidConfiguration(
                "the join token is empty", hint="set the same non-empty token on every node"
            )
        seed = Scrypt(salt=_SALT, **_SCRYPT).derive(token.encode())
        scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
        key = ec.derive_private_key(scalar, ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bacalhau"),
                x509.NameAttribute(NameOID.COMMON_NAME, JOIN_CA_COMMON_NAME),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(1)
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    def server_certificate(self, tls_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        """The certificate a requester presents to joining nodes (SAN :data:`JOIN_SERVER_NAME`)."""
        return self._leaf(
            tls_key,
            "join server",
            [x509.DNSName(JOIN_SERVER_NAME)],
            ExtendedKeyUsageOID.SERVER_AUTH,
        )

    def client_certificate(
        self, tls_key: ec.EllipticCurvePublicKey, node_id: str
    ) -> x509.Certificate:
        """The certificate a node presents while it joins (URI SAN ``bacalhau://join/<ID>``)."""
        return self._leaf(
            tls_key,
            node_id,
            [x509.UniformResourceIdentifier(JOIN_URI_PREFIX + node_id)],
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def _leaf(
        self,
        tls_key: ec.EllipticCurvePublicKey,
        common_name: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bacalhau"),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(tls_key)
            .serial_number(x509.random_serial_number())
            # The join CA's own window, not one around this node's clock: whoever holds the
            # token can sign any window, so a narrow one guards nothing, and it would make a
            # join fail between clocks apart, and the requester's certificate (made once, at
            # its start) expire while it runs.
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
