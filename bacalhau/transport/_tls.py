"""Mutual-TLS credentials for node-to-node gRPC, and pinning the peer a client expects.

Both sides present a certificate from the cluster CA and trust only that CA
(``require_client_auth=True`` on servers). A client pins the node it means to reach by setting
the TLS target name to that node's DNS SAN (:func:`bacalhau.identity.node_dns_name`): the
handshake then fails unless the server's certificate was issued for that node ID, whatever
address it answers on.
"""

from __future__ import annotations

from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from bacalhau.errors import InvalidConfiguration
from bacalhau.identity import NodeFiles, node_dns_name
from bacalhau.identity._files import read_private, read_public
from bacalhau.identity._join_token import JoinAuthority

#: Larger than gRPC's 4 MiB default: jobs may carry inline inputs and long params.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_HINT = "run `bacalhau ca issue --data-dir <dir>` to install this node's certificate"


def _read(files: NodeFiles) -> tuple[bytes, bytes, bytes]:
    return (
        read_private(files.tls_key, what="TLS key", hint=_HINT),
        read_public(files.tls_cert, what="TLS certificate", hint=_HINT),
        read_public(files.ca_cert, what="cluster CA certificate", hint=_HINT),
    )


class TlsMaterial:
    """A node's TLS files as its servers and clients use them, replaceable while it runs.

    One object is shared by a node's server and clients. :meth:`reload` (after a renewed
    certificate was written) moves :attr:`generation` on: the server presents the new
    certificate from its next handshake, and each client opens new channels with it, leaving
    its old ones to finish what they carry.
    """

    def __init__(self, files: NodeFiles) -> None:
        self.files = files
        self.generation = 0
        self._load()

    def _load(self) -> None:
        key, cert, ca = _read(self.files)
        _check_pair(self.files, key, cert)
        self.key, self.cert, self.ca = key, cert, ca
        self.channel_credentials: Any = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def reload(self) -> None:
        """Read the files again; raises (and keeps the old material) if they are unusable."""
        self._load()
        self.generation += 1


def _check_pair(files: NodeFiles, key: bytes, cert: bytes) -> None:
    """The key and the certificate parse, and belong together: gRPC would only find out at
    a handshake, and a reload must not swap in what cannot work."""
    try:
        private = load_pem_private_key(key, password=None)
        public = x509.load_pem_x509_certificate(cert).public_key()
    except (ValueError, TypeError) as e:
        raise InvalidConfiguration(
            f"the TLS key {files.tls_key} or certificate {files.tls_cert} is unreadable: {e}",
            hint=_HINT,
        ) from None
    if private.public_key() != public:
        raise InvalidConfiguration(
            f"the TLS certificate {files.tls_cert} is not for the key {files.tls_key}",
            hint=_HINT,
        )


def tls_material(source: NodeFiles | TlsMaterial) -> TlsMaterial:
    """``source`` itself, or the material of its files (read now, never reloaded)."""
    return source if isinstance(source, TlsMaterial) else TlsMaterial(source)


def _server_configuration(tls: TlsMaterial, join: JoinAuthority | None) -> Any:
    pairs = [(tls.key, tls.cert)]
    ca = tls.ca
    if join is not None:
        tls_key = load_pem_private_key(tls.key, password=None)
        if not isinstance(tls_key, ec.EllipticCurvePrivateKey):
            raise InvalidConfiguration(
                f"the TLS key {tls.files.tls_key} is not an ECDSA key", hint=_HINT
            )
        server_cert = join.server_certificate(tls_key.public_key())
        pairs.append((tls.key, server_cert.public_bytes(Encoding.PEM)))
        ca = ca + join.certificate_pem
    return grpc.ssl_server_certificate_configuration(pairs, root_certificates=ca)


def server_credentials(source: NodeFiles | TlsMaterial, join: JoinAuthority | None = None) -> Any:
    """Server credentials: present the node certificate, require one from the cluster CA.

    With a ``join`` authority (a requester with a join token), also present a certificate
    the join CA signed to clients asking for its name by SNI, and take client certificates
    the join CA signed (which only the Join call accepts: see :mod:`bacalhau.transport._peer`).
    Given a :class:`TlsMaterial`, a reload takes effect from the next handshake.
    """
    tls = tls_material(source)
    served = tls.generation

    def fetch() -> Any:
        # Called by gRPC before each handshake: a comparison, unless the material changed.
        nonlocal served
        if tls.generation == served:
            return None
        served = tls.generation
        return _server_configuration(tls, join)

    return grpc.dynamic_ssl_server_credentials(
        _server_configuration(tls, join), fetch, require_client_authentication=True
    )


def channel_credentials(files: NodeFiles) -> Any:
    """Client credentials: present the node certificate, trust only the cluster CA."""
    return TlsMaterial(files).channel_credentials


def target_name_override(node_id: str) -> str:
    """The TLS name to expect from ``node_id``'s certificate (its DNS SAN)."""
    return node_dns_name(node_id)


def channel_options(expected_node_id: str | None) -> list[tuple[str, Any]]:
    """gRPC channel options for node-to-node channels.

    With ``expected_node_id``, the channel only completes a handshake with that node.
    Reconnect backoff is capped low because peers are usually on a LAN and a node that
    restarts must be reachable again within a probe timeout: a channel still backing off from
    the peer's downtime fails calls at once, so gossip would declare a node that has just come
    back dead again (seen with a 5 s cap: most restarts flapped). Attempts are only made while
    calls need the channel, so a dead peer costs nothing. Keepalives detect silently dropped
    connections.
    """
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 250),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Each client keeps its own connections instead of gRPC's process-wide subchannel pool,
        # so a connection always carries the credentials and pin of the client that made it
        # (a hybrid node runs several clients in one process).
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if expected_node_id is not None:
        opts.append(("grpc.ssl_target_name_override", target_name_override(expected_node_id)))
    return opts


def server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Accept the clients' 30 s keepalive pings (the default would answer them with GOAWAY).
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Without this, Linux lets a second server bind the same port and share its traffic.
        ("grpc.so_reuseport", 0),
    ]
