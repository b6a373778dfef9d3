"""The cluster CA: the root of trust of a private cluster, and the node certificates it issues.

Every node-to-node connection is mutual TLS with certificates from one cluster CA. A node
certificate names its node twice:

- a URI SAN ``bacalhau://node/<peer id>``: what servers read to learn who is calling;
- a DNS SAN :func:`node_dns_name` (the peer ID's multihash in base32): what clients pin, via
  gRPC's ``grpc.ssl_target_name_override``, to make sure they reach the node they meant.

Key types. The node identity key is ed25519, but grpc's BoringSSL build refuses an ed25519
*TLS* key: a mutual-TLS handshake with ed25519 leaf certificates fails with
``NO_COMMON_SIGNATURE_ALGORITHMS`` (tried with grpcio 1.85; gRPC core does not offer ed25519
among its TLS signature algorithms). So the TLS key is a separate ECDSA P-256 key, and the CA
key is P-256 too, which every TLS stack verifies. The CA binds the TLS key to the node ID when
it issues the certificate; messages a node vouches for are still signed by its ed25519 key.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.identity._files import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    NodeFiles,
    read_private,
    read_public,
    write_private,
    write_public,
)
from bacalhau.identity._keys import NodeIdentity
from bacalhau.identity._peer_id import node_dns_name, node_uri

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
#: Certificates start this far in the past so that a node whose clock is behind the CA's (by
#: up to a day: a real-time clock kept in local time is hours off) does not find a fresh
#: certificate "not yet valid". A start in the past grants nothing: the key did not exist.
_CLOCK_SKEW = datetime.timedelta(days=1)
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_CA_HINT = "create one with `bacalhau ca init --ca-dir <dir>`, or point to an existing CA"


class ClusterCA:
    """A cluster certificate authority kept in a directory (``ca.key`` 0600, ``ca.crt``)."""

    __slots__ = ("_key", "ca_dir", "certificate")

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate, *, ca_dir: Path
    ) -> None:
        self._key = key
        self.certificate = certificate
        self.ca_dir = ca_dir

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    @classmethod
    def create(
        cls,
        ca_dir: str | os.PathLike[str],
        *,
        name: str = "Bacalhau cluster CA",
        days: int = 3650,
    ) -> ClusterCA:
        """Create a new CA in ``ca_dir``; refuses to overwrite an existing one."""
        d = Path(ca_dir)
        if (d / CA_KEY_FILE).exists():
            raise InvalidConfiguration(
                f"a cluster CA already exists in {d}",
                hint="load it instead, or choose another directory for a new CA",
            )
        if days < 1:
            raise InvalidRequest("CA validity must be at least one day", component="Identity")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        # A random suffix keeps two clusters' CAs distinguishable in logs and tools.
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bacalhau"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {secrets.token_hex(4)}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if not write_private(d / CA_KEY_FILE, key_pem, exclusive=True):
            raise InvalidConfiguration(
                f"a cluster CA was created in {d} concurrently",
                hint="load it instead of creating another",
            )
        write_public(d / CA_CERT_FILE, cert.public_bytes(Encoding.PEM))
        return cls(key, cert, ca_dir=d)

    @classmethod
    def load(cls, ca_dir: str | os.PathLike[str]) -> ClusterCA:
        """Load the CA in ``ca_dir``; :class:`InvalidConfiguration` when missing or corrupt."""
        d = Path(ca_dir)
        key_pem = read_private(d / CA_KEY_FILE, what="CA key", hint=_CA_HINT)
        cert_pem = read_public(d / CA_CERT_FILE, what="CA certificate", hint=_CA_HINT)
        try:
            key = load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError):
            raise InvalidConfiguration(
                f"the CA in {d} is not a readable PEM key and certificate", hint=_CA_HINT
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidConfiguration(f"CA key in {d} is not an ECDSA key", hint=_CA_HINT)
        if cert.public_key() != key.public_key():
            raise InvalidConfiguration(
                f"ca.crt and ca.key in {d} do not belong together", hint=_CA_HINT
            )
        return cls(key, cert, ca_dir=d)

    def issue_node_certificate(
        self,
        identity: NodeIdentity,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        days: int = 365,
    ) -> NodeFiles:
        """Issue a TLS certificate for ``identity`` and install it in the node's data directory.

        Writes ``tls.key`` (a new P-256 key, mode 0600), ``tls.crt`` and ``ca.crt`` into
        ``data_dir`` (default: the directory the identity was loaded from). ``hosts`` are the
        names and IP addresses clients may dial the node by without pinning its node ID.
        """
        target = Path(data_dir) if data_dir is not None else identity.data_dir
        if target is None:
            raise InvalidRequest(
                "no data directory to install the certificate into",
                hint="pass data_dir, or load the identity from its data directory",
                component="Identity",
            )
        tls_key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign_node_certificate(
            identity.node_id, tls_key.public_key(), hosts=hosts, days=days
        )
        files = NodeFiles.in_dir(target)
        write_private(
            files.tls_key, tls_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
        write_public(files.tls_cert, cert.public_bytes(Encoding.PEM))
        write_public(files.ca_cert, self.certificate_pem)
        return files

    def sign_node_certificate(
        self,
        node_id: str,
        tls_public_key: ec.EllipticCurvePublicKey,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        days: int = 365,
    ) -> x509.Certificate:
        """A certificate binding ``tls_public_key`` to ``node_id`` (URI and DNS SANs) and to
        ``hosts`` (the names and IP addresses clients may dial the node by)."""
        if days < 1:
            raise InvalidRequest("certificate validity must be at least one day")
        sans: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(node_uri(node_id)),
            x509.DNSName(node_dns_name(node_id)),
        ]
        sans.extend(_host_san(h) for h in hosts)
        now = datetime.datetime.now(datetime.UTC)
        not_after = min(now + datetime.timedelta(days=days), self.certificate.not_valid_after_utc)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bacalhau"),
                        x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(tls_public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(tls_public_key), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )


def _host_san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.rstrip(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.match(p) for p in name.split(".")):
        raise InvalidRequest(
            f"{host!r} is neither an IP address nor a DNS name",
            hint="pass host names like node1.example.org or addresses like 10.0.0.5",
            component="Identity",
        )
    return x509.DNSName(name.lower())
