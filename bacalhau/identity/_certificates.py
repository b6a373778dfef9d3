"""Reading node certificates, and checking that a data directory can run a node."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.identity._files import NodeFiles, read_private, read_public
from bacalhau.identity._keys import NodeIdentity
from bacalhau.identity._peer_id import NODE_URI_PREFIX, peer_id_from_node_uri


def node_id_from_certificate(cert: x509.Certificate) -> str:
    """The node ID a certificate was issued for (its one ``bacalhau://node/`` URI SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidRequest("certificate has no subject alternative names") from None
    uris = [
        u
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(NODE_URI_PREFIX)
    ]
    if len(uris) != 1:
        raise InvalidRequest(f"certificate names {len(uris)} nodes; a node certificate names one")
    return peer_id_from_node_uri(uris[0])


def certified_hosts(files: NodeFiles) -> frozenset[str]:
    """The DNS names and IP addresses this node's own certificate names (lower case; none
    when it has no readable certificate)."""
    try:
        cert = x509.load_pem_x509_certificate(files.tls_cert.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return frozenset()
    hosts = [*names.get_values_for_type(x509.DNSName)]
    hosts += [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return frozenset(h.lower() for h in hosts)


def check_node_files(files: NodeFiles, *, now: datetime.datetime | None = None) -> str:
    """Check that a data directory holds a usable identity and TLS certificate.

    Verifies that every file exists, that the secret ones are private, that ``tls.crt`` was
    issued by ``ca.crt``, is currently valid, names this node's ID and matches ``tls.key``.
    Returns the node ID. Raises :class:`InvalidConfiguration` with a hint saying how to fix
    the first problem found.
    """
    issue_hint = (
        f"issue a certificate for this node with the cluster CA: `bacalhau ca issue "
        f"--ca-dir CA_DIR --data-dir {files.data_dir}` (a requester started without "
        f"certificates keeps the cluster CA in its data dir's cluster-ca folder), or set "
        f"the requester's join token here (Compute.Auth.Token, as Orchestrator.Auth.Token on "
        f"the requester) for the node to get one by joining"
    )
    identity = NodeIdentity.load(files.data_dir)
    ca_pem = read_public(files.ca_cert, what="cluster CA certificate", hint=issue_hint)
    cert_pem = read_public(files.tls_cert, what="TLS certificate", hint=issue_hint)
    key_pem = read_private(files.tls_key, what="TLS key", hint=issue_hint)
    parsing = files.ca_cert
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        parsing = files.tls_cert
        cert = x509.load_pem_x509_certificate(cert_pem)
        parsing = files.tls_key
        tls_key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InvalidConfiguration(f"{parsing} is not readable PEM", hint=issue_hint) from None
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidConfiguration(
            f"{files.tls_cert} was not issued by the CA in {files.ca_cert}", hint=issue_hint
        ) from None
    when = now or datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        early = when < cert.not_valid_before_utc
        raise InvalidConfiguration(
            f"{files.tls_cert} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, and this machine's clock "
            f"reads {when:%Y-%m-%d %H:%M} UTC",
            # Not yet valid: the certificate was issued by a clock ahead of this one (or this
            # one is behind): a new certificate would not help.
            hint=(
                "set this machine's clock right (NTP): it is behind the clock that issued "
                "the certificate"
                if early
                else issue_hint
            ),
        )
    try:
        cert_node_id = node_id_from_certificate(cert)
    except InvalidRequest as e:
        raise InvalidConfiguration(f"{files.tls_cert}: {e.message}", hint=issue_hint) from None
    if cert_node_id != identity.node_id:
        raise InvalidConfiguration(
            f"{files.tls_cert} was issued for node {cert_node_id}, "
            f"but this node's key is node {identity.node_id}",
            hint=issue_hint,
        )
    if tls_key.public_key() != cert.public_key():
        raise InvalidConfiguration(
            f"{files.tls_key} is not the key of {files.tls_cert}", hint=issue_hint
        )
    return identity.node_id
