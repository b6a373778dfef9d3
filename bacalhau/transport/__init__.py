"""Node-to-node bprotocol over mutual-TLS gRPC.

- :class:`NodeServer` serves a node's roles: ComputeService (to a :class:`ComputeHandler`),
  OrchestratorService (to an :class:`OrchestratorHandler`), NodeService (every node proves
  its identity there) and MembershipService (gossip, see :mod:`bacalhau.gossip`).
- :class:`ComputeClient` is the requester's way to compute nodes; :class:`OrchestratorClient`
  a compute node's way to a requester (identified at a seed address first);
  :class:`MembershipClient` the gossip member's network.

Trust: every connection is mutual TLS with certificates from the cluster CA, and each call is
attributed to the node ID in the caller's certificate. Messages a node vouches for (a
requester's commands, bids, results, failures, execution reports, identity statements and
gossip records) are signed with its identity key and accepted only when the signer is the TLS
peer and the message names the signer (and, for commands, names the receiving node). Clients
pin the node they call, so a call cannot reach another node. Whether a proven sender may
command a node is the role's decision (a compute node obeys only the requesters it trusts).
A node without a certificate may get one with the cluster's join token (:func:`join_cluster`,
served by a requester through :meth:`NodeServer.add_join_service`). Every refusal is a
:class:`bacalhau.errors.PermissionDenied` on both sides; every other failure is a
:class:`bacalhau.errors.BacalhauError` rebuilt from the same stable code the remote raised.
"""

from bacalhau.transport._blocks import BlockClient, BlockServicer, add_block_service
from bacalhau.transport._channel import DEFAULT_TIMEOUT_SECONDS, format_address
from bacalhau.transport._clients import ComputeClient, OrchestratorClient
from bacalhau.transport._convert_membership import MEMBER_RECORD_CODEC, ProtoRecordCodec
from bacalhau.transport._handlers import ComputeHandler, OrchestratorHandler, RunResultRefusals
from bacalhau.transport._join import Certify, Joined, join_cluster
from bacalhau.transport._membership import (
    MembershipClient,
    MembershipServicer,
    add_membership_service,
)
from bacalhau.transport._server import NodeServer
from bacalhau.transport._tls import (
    TlsMaterial,
    channel_credentials,
    channel_options,
    server_credentials,
    target_name_override,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MEMBER_RECORD_CODEC",
    "BlockClient",
    "BlockServicer",
    "Certify",
    "ComputeClient",
    "ComputeHandler",
    "Joined",
    "MembershipClient",
    "MembershipServicer",
    "NodeServer",
    "OrchestratorClient",
    "OrchestratorHandler",
    "ProtoRecordCodec",
    "RunResultRefusals",
    "TlsMaterial",
    "add_block_service",
    "add_membership_service",
    "channel_credentials",
    "channel_options",
    "format_address",
    "join_cluster",
    "server_credentials",
    "target_name_override",
]
