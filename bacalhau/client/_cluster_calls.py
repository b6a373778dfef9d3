"""The REST client's calls about the cluster rather than its jobs: nodes, the agent, and who
the API takes this client for. :class:`~bacalhau.client.AsyncClient` has them all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bacalhau.client._answers import items_of
from bacalhau.client._auth import AuthStatus
from bacalhau.client._decode import node_state_from_dict
from bacalhau.client._session import RestSession
from bacalhau.client._types import NodePage, VersionInfo
from bacalhau.errors import InvalidRequest
from bacalhau.models import NodeState, Obj

__all__ = ["ClusterCalls", "quote_id"]


def quote_id(ident: str) -> str:
    """An ID or name as one path segment of a URL; an empty one is refused here: it would
    address the collection (``/jobs/``), not one of its members."""
    if not ident.strip():
        raise InvalidRequest(
            "the ID given is empty",
            hint="pass a job's ID or name, or a node's ID, as `bacalhau job list` and "
            "`bacalhau node list` show them",
        )
    return quote(ident, safe="")


class ClusterCalls(RestSession):
    """Nodes, agent and authentication calls of the v1 REST API."""

    # -- nodes ------------------------------------------------------------------------------

    async def list_nodes(
        self,
        *,
        labels: str = "",
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        filter_approval: str = "",
        filter_status: str = "",
    ) -> list[NodeState]:
        """The nodes that match, sorted; the first ``limit`` of them (0: all)."""
        page = await self.node_page(
            labels=labels,
            order_by=order_by,
            reverse=reverse,
            limit=limit,
            filter_approval=filter_approval,
            filter_status=filter_status,
        )
        return page.items

    async def node_page(
        self,
        *,
        labels: str = "",
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        next_token: str = "",
        filter_approval: str = "",
        filter_status: str = "",
    ) -> NodePage:
        """One page of the node list (as :meth:`list_nodes`): pass the answer's
        ``next_token`` for the next ("" on the last; Bacalhau's server always answers "")."""
        data = await self._http.request(
            "GET",
            "/api/v1/orchestrator/nodes",
            params={
                "labels": labels,
                "order_by": order_by,
                "reverse": reverse or None,
                "limit": limit or None,
                "next_token": next_token or None,
                "filter-approval": filter_approval,
                "filter-status": filter_status,
            },
        )
        return NodePage(
            items=[node_state_from_dict(n) for n in items_of(data, "Nodes")],
            next_token=Obj(data, "").get_str("NextToken"),
        )

    async def get_node(self, node_id: str) -> NodeState:
        data = await self._http.request("GET", f"/api/v1/orchestrator/nodes/{quote_id(node_id)}")
        return node_state_from_dict(Obj(data, "").raw("Node"))

    async def describe_node(self, node_id: str) -> dict[str, Any]:
        """A node as the server describes it, whole: :meth:`get_node` plus what only the
        describe route adds (for this requester: its accept hooks as configured and which
        hook decided its latest bids, under ``Orchestrator``)."""
        data = await self._http.request("GET", f"/api/v1/orchestrator/nodes/{quote_id(node_id)}")
        node = Obj(data, "").raw("Node")
        return dict(node) if isinstance(node, Mapping) else {}

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        """approve | reject | delete; returns (success, error message)."""
        data = await self._http.request(
            "PUT",
            f"/api/v1/orchestrator/nodes/{quote_id(node_id)}",
            body={"NodeID": node_id, "Action": action, "Message": message},
        )
        o = Obj(data, "")
        return o.get_bool("Success"), o.get_str("Error")

    # -- agent ------------------------------------------------------------------------------

    async def agent_alive(self) -> bool:
        data = await self._http.request("GET", "/api/v1/agent/alive")
        return Obj(data, "").get_str("Status").upper() == "OK"

    async def agent_version(self) -> VersionInfo:
        data = await self._http.request("GET", "/api/v1/agent/version")
        o = Obj(data, "")
        return VersionInfo(
            git_version=o.get_str("GitVersion"),
            git_commit=o.get_str("GitCommit"),
            build_date=o.get_str("BuildDate"),
            goos=o.get_str("GOOS"),
            goarch=o.get_str("GOARCH"),
            major=o.get_str("Major"),
            minor=o.get_str("Minor"),
        )

    async def agent_node(self) -> NodeState:
        return node_state_from_dict(await self._http.request("GET", "/api/v1/agent/node"))

    async def agent_config(self) -> dict[str, Any]:
        """The node's configuration, secrets redacted (Bacalhau's ``agent config``)."""
        data = await self._http.request("GET", "/api/v1/agent/config")
        config = data.get("config") if isinstance(data, dict) else None
        return config if isinstance(config, dict) else {}

    # -- authentication ---------------------------------------------------------------------

    async def auth_status(self) -> AuthStatus:
        """Whether the API asks for credentials, and who it takes this client's for (our
        ``/api/v1/agent/whoami``). Raises :class:`~bacalhau.errors.Unauthorized` when the
        credentials sent are refused, :class:`~bacalhau.errors.NotFound` from a server
        without the endpoint (Bacalhau's own: see :meth:`auth_methods`)."""
        return AuthStatus.from_dict(await self._http.request("GET", "/api/v1/agent/whoami"))

    async def auth_methods(self) -> dict[str, str]:
        """Bacalhau's ``GET /api/v1/auth``: its older authentication methods by name, each
        with its type (``challenge``, ``ask``); none when the server has users (Basic and
        API keys) or SSO instead."""
        data = await self._http.request("GET", "/api/v1/auth")
        methods = data.get("Methods") if isinstance(data, dict) else None
        if not isinstance(methods, dict):
            return {}
        return {
            str(name): str(req.get("type") or req.get("Type") or "")
            if isinstance(req, dict)
            else ""
            for name, req in methods.items()
        }
