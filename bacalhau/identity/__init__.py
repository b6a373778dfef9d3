"""Node identities and the cluster's root of trust.

Each node has an ed25519 key; its node ID is the key's libp2p-style peer ID (``12D3KooW...``),
which embeds the public key, so anyone can check a node's signature from its ID alone. A
cluster CA issues each node a TLS certificate naming that ID; transport uses the certificates
for mutual TLS and the identity key to sign what a node vouches for.
"""

from bacalhau.identity._ca import DEFAULT_HOSTS, ClusterCA
from bacalhau.identity._certificates import (
    certified_hosts,
    check_node_files,
    node_id_from_certificate,
)
from bacalhau.identity._files import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    NODE_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    NodeFiles,
)
from bacalhau.identity._join_token import MIN_TOKEN_LENGTH, JoinAuthority
from bacalhau.identity._keys import NodeIdentity, verify
from bacalhau.identity._peer_id import (
    NODE_URI_PREFIX,
    is_peer_id,
    node_dns_name,
    node_uri,
    peer_id_bytes,
    peer_id_from_dns_name,
    peer_id_from_node_uri,
    peer_id_from_public_key,
    public_key_from_peer_id,
)

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEFAULT_HOSTS",
    "MIN_TOKEN_LENGTH",
    "NODE_KEY_FILE",
    "NODE_URI_PREFIX",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "ClusterCA",
    "JoinAuthority",
    "NodeFiles",
    "NodeIdentity",
    "certified_hosts",
    "check_node_files",
    "is_peer_id",
    "node_dns_name",
    "node_id_from_certificate",
    "node_uri",
    "peer_id_bytes",
    "peer_id_from_dns_name",
    "peer_id_from_node_uri",
    "peer_id_from_public_key",
    "public_key_from_peer_id",
    "verify",
]
