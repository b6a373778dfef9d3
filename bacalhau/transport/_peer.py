"""Who is calling: the node ID of the TLS peer of a server-side call.

The cluster CA writes the node ID into each node certificate as the URI SAN
``bacalhau://node/<peer id>``; gRPC exposes the verified peer certificate's SANs in the call's
auth context. This is the one place that turns a TLS peer into a node ID; everything that
trusts "the caller" goes through :func:`peer_node_id`.

A requester with a join token also trusts the token's join CA, so that nodes without a
cluster certificate can reach the Join call (:mod:`bacalhau.identity._join_token`). Anyone
with the token can make that CA sign anything, so :func:`peer_node_id` refuses every
certificate it signed, and only :func:`joining_peer` accepts them.
"""

from __future__ import annotations

import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bacalhau.errors import InvalidRequest, PermissionDenied
from bacalhau.identity import NODE_URI_PREFIX, is_peer_id, peer_id_from_node_uri
from bacalhau.identity._join_token import JOIN_CA_COMMON_NAME, JOIN_URI_PREFIX

_URI_PREFIX = NODE_URI_PREFIX.encode()
_JOIN_PREFIX = JOIN_URI_PREFIX.encode()
_JOIN_ONLY_HINT = "a node that joined with the token calls again with its cluster certificate"


def peer_node_id(context: Any) -> str:
    """The node ID in the caller's (CA-verified) certificate.

    Raises :class:`PermissionDenied` when the call did not come over mutual TLS or the
    certificate does not name exactly one node.
    """
    auth: dict[str, list[bytes]] = context.auth_context() or {}
    if auth and _signed_by_join_ca(_peer_pem(auth)):
        raise PermissionDenied(
            "the caller's certificate was signed with the join token: it may only join",
            hint=_JOIN_ONLY_HINT,
        )
    # ``peer_uri`` holds exactly the URI SANs; the generic SAN list also holds DNS names and
    # IPs, so it is only a fallback for gRPC builds that do not split SANs by type.
    if "peer_uri" in auth:
        candidates = auth["peer_uri"]
    else:
        candidates = auth.get("x509_subject_alternative_name", [])
    uris = {v for v in candidates if v.startswith(_URI_PREFIX)}
    if len(uris) != 1:
        raise PermissionDenied(
            "the caller's certificate does not name exactly one node"
            if auth
            else "the call did not come over mutual TLS",
            hint="node-to-node calls need a certificate issued by the cluster CA",
        )
    try:
        return peer_id_from_node_uri(uris.pop().decode("ascii"))
    except (InvalidRequest, UnicodeDecodeError):
        raise PermissionDenied("the caller's certificate names a malformed node ID") from None


def joining_peer(context: Any) -> tuple[str, ec.EllipticCurvePublicKey]:
    """The node ID and TLS key of a caller whose certificate the
    join CA signed, naming ``bacalhau://join/<node ID>``: a node asking to join.

    Raises :class:`PermissionDenied` for any other caller.
    """
    auth: dict[str, list[bytes]] = context.auth_context() or {}
    pem = _peer_pem(auth)
    cert = _certificate(pem) if pem else None
    if cert is None or not _signed_by_join_ca(pem):
        raise PermissionDenied(
            "only a node joining with the cluster's join token may call Join",
            hint="nodes of the cluster already hold a certificate",
        )
    uris = {v for v in auth.get("peer_uri", []) if v.startswith(_JOIN_PREFIX)}
    node_id = uris.pop()[len(_JOIN_PREFIX) :].decode("ascii", "replace") if len(uris) == 1 else ""
    if not is_peer_id(node_id):
        raise PermissionDenied("the joining node's certificate names no node ID")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PermissionDenied("the joining node's TLS key is not an ECDSA key")
    return node_id, public


def _peer_pem(auth: dict[str, list[bytes]]) -> bytes:
    pems = auth.get("x509_pem_cert") or [b""]
    return pems[0]


@functools.lru_cache(maxsize=512)
def _certificate(pem: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


@functools.lru_cache(maxsize=512)
def _signed_by_join_ca(pem: bytes) -> bool:
    """Whether the join CA signed the peer certificate ``pem`` (unreadable: treated so).

    TLS verified the chain, and the join CA may sign leaves only (path length 0), so a
    certificate it signed names it as issuer: the issuer's name is enough.
    """
    cert = _certificate(pem)
    if cert is None:
        return True
    names = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(n.value == JOIN_CA_COMMON_NAME for n in names)
