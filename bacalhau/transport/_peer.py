"""Who is calling: the node ID of the TLS peer of a server-side call.

The cluster CA writes the node ID into each node certificate as the URI SAN
``bacalhau://node/<peer id>``; gRPC exposes the verified peer certificate's SANs in the call's
auth context. This is the one place that turns a TLS peer into a node ID; everything that
trusts "the caller" goes through :func:`peer_node_id`.
"""

from __future__ import annotations

from typing import Any

from bacalhau.errors import InvalidRequest, PermissionDenied
from bacalhau.identity import NODE_URI_PREFIX, peer_id_from_node_uri

_URI_PREFIX = NODE_URI_PREFIX.encode()


def peer_node_id(context: Any) -> str:
    """The node ID in the caller's (CA-verified) certificate.

    Raises :class:`PermissionDenied` when the call did not come over mutual TLS or the
    certificate does not name exactly one node.
    """
    auth: dict[str, list[bytes]] = context.auth_context() or {}
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
