"""The gRPC client's calls about the cluster rather than its jobs: nodes and the agent.
:class:`~bacalhau.client.AsyncGrpcClient` has them all (as the REST client's
:mod:`~bacalhau.client._cluster_calls`)."""

from __future__ import annotations

import json
from typing import Any

from bacalhau._proto.v1 import api_pb2
from bacalhau.client._auth import AuthStatus, Identity
from bacalhau.client._decode import node_state_from_dict
from bacalhau.client._grpc_channel import GrpcChannel
from bacalhau.client._types import VersionInfo
from bacalhau.models import NodeState

__all__ = ["GrpcClusterCalls"]


def _node_of(doc: api_pb2.NodeDocument) -> NodeState:
    return node_state_from_dict(json.loads(doc.node_json))


class GrpcClusterCalls(GrpcChannel):
    """Nodes and the agent through the public gRPC API."""

    # -- nodes ------------------------------------------------------------------------------

    async def list_nodes(self) -> list[NodeState]:
        """Every node the requester knows (itself included), by node ID."""
        resp: api_pb2.ListNodesResponse = await self._call(
            self._node_service.ListNodes, api_pb2.ListNodesRequest()
        )
        return [_node_of(n) for n in resp.nodes]

    async def get_node(self, node_id: str) -> NodeState:
        """A node by ID or unique prefix."""
        resp: api_pb2.GetNodeResponse = await self._call(
            self._node_service.GetNode, api_pb2.GetNodeRequest(node_id=node_id)
        )
        return _node_of(resp.node)

    async def describe_node(self, node_id: str) -> dict[str, Any]:
        """A node's JSON, whole: :meth:`get_node` plus, for the requester itself, its accept
        hooks as configured and which hook decided its latest bids (``Orchestrator``)."""
        resp: api_pb2.GetNodeResponse = await self._call(
            self._node_service.GetNode, api_pb2.GetNodeRequest(node_id=node_id)
        )
        body = json.loads(resp.node.node_json)
        return body if isinstance(body, dict) else {}

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        """approve | reject | delete; returns ``(True, "")``. A refused decision raises its
        error (:class:`NodeNotFound`, :class:`InvalidRequest`, :class:`InvalidTransition`
        for a node already in that state), as every other call does."""
        resp: api_pb2.UpdateNodeResponse = await self._call(
            self._node_service.UpdateNode,
            api_pb2.UpdateNodeRequest(node_id=node_id, action=action, message=message),
        )
        return resp.success, resp.error

    # -- agent ------------------------------------------------------------------------------

    async def agent_alive(self) -> bool:
        resp: api_pb2.AliveResponse = await self._call(
            self._agent_service.Alive, api_pb2.AliveRequest()
        )
        return resp.status.upper() == "OK"

    async def agent_version(self) -> VersionInfo:
        """The node's version (the gRPC API gives only ``git_version``)."""
        resp: api_pb2.VersionResponse = await self._call(
            self._agent_service.Version, api_pb2.VersionRequest()
        )
        return VersionInfo(git_version=resp.git_version)

    async def agent_config(self) -> dict[str, Any]:
        """The node's configuration, secrets redacted (Bacalhau's ``agent config``)."""
        resp: api_pb2.ConfigResponse = await self._call(
            self._agent_service.Config, api_pb2.ConfigRequest()
        )
        config = json.loads(resp.config_json or "{}")
        return config if isinstance(config, dict) else {}

    async def agent_node(self) -> NodeState:
        """The requester's own description."""
        resp: api_pb2.NodeInfoResponse = await self._call(
            self._agent_service.NodeInfo, api_pb2.NodeInfoRequest()
        )
        return node_state_from_dict(json.loads(resp.node_json))

    async def auth_status(self) -> AuthStatus:
        """Whether the API asks for credentials, the ``authorization`` schemes it takes, and
        who the credentials sent are (``AgentService.WhoAmI``). Raises
        :class:`~bacalhau.errors.Unauthorized` when the credentials sent are refused."""
        resp: api_pb2.WhoAmIResponse = await self._call(
            self._agent_service.WhoAmI, api_pb2.WhoAmIRequest()
        )
        user = None
        if resp.authenticated:
            u = resp.user
            user = Identity(
                name=u.name,
                username=u.username,
                alias=u.alias,
                method=u.method,
                capabilities=tuple(u.capabilities),
            )
        return AuthStatus(auth_required=resp.auth_required, methods=tuple(resp.methods), user=user)
