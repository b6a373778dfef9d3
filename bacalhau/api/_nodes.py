"""``/api/v1/orchestrator/nodes``: list, describe, approve/reject/delete.

Node responses carry both spellings (``Nodes``/``nodes``, ``Node``/``node``) and both update
routes are served, because the Go and Python clients disagree on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from bacalhau.api._agent import redact
from bacalhau.api._context import context
from bacalhau.api._errors import json_response
from bacalhau.api._query import Query, body_str, read_json
from bacalhau.errors import BacalhauError, BadQuery, InvalidRequest
from bacalhau.models import Membership, NodeState, Resources, parse_selector, selector_matches

_ACTIONS = ("approve", "reject", "delete")


def _available(node: NodeState) -> Resources:
    compute = node.info.compute
    return compute.available_capacity if compute is not None else Resources()


_NODE_ORDER: dict[str, Callable[[NodeState], Any]] = {
    "id": lambda n: n.info.node_id,
    "type": lambda n: n.info.node_type.value,
    "available_cpu": lambda n: _available(n).cpu,
    "available_memory": lambda n: _available(n).memory,
    "available_disk": lambda n: _available(n).disk,
    "available_gpu": lambda n: _available(n).gpu,
    "approval": lambda n: n.membership.value,
    "status": lambda n: n.connection.value,
    "liveness": lambda n: n.liveness.value,
}


def _filter_value(q: Query, names: tuple[str, ...], allowed: tuple[str, ...]) -> str:
    for name in names:
        value = q.text(name).strip().upper()
        if value:
            if value not in allowed:
                raise BadQuery(
                    f"invalid {name} {value!r}",
                    field=name,
                    hint="use one of: " + ", ".join(allowed),
                )
            return value
    return ""


async def list_nodes(request: web.Request) -> web.Response:
    q = Query(request)
    order_by = q.text("order_by", "id").lower()
    key = _NODE_ORDER.get(order_by)
    if key is None:
        raise BadQuery(
            f"invalid order_by {order_by!r}",
            field="order_by",
            hint="use one of: " + ", ".join(_NODE_ORDER),
        )
    labels = q.joined("labels")
    selector = parse_selector(labels, field="labels") if labels else []
    approval = _filter_value(
        q, ("filter-approval", "filter_approval"), tuple(m.value for m in Membership)
    )
    status = _filter_value(q, ("filter-status", "filter_status"), ("CONNECTED", "DISCONNECTED"))
    nodes = [
        n
        for n in await context(request).orchestrator.list_nodes()
        if selector_matches(selector, n.info.labels)
        and (not approval or n.membership.value == approval)
        and (not status or n.connection.value == status)
    ]
    nodes.sort(key=key, reverse=q.flag("reverse"))
    limit = q.count("limit")
    if limit:
        nodes = nodes[:limit]
    items = [n.to_dict() for n in nodes]
    return json_response({"Nodes": items, "nodes": items, "NextToken": ""})


async def get_node(request: web.Request) -> web.Response:
    ctx = context(request)
    node = await ctx.orchestrator.get_node(request.match_info["node_id"])
    item = node.to_dict()
    if node.info.node_id == ctx.orchestrator.node_info().node_id:
        # This node's own accept hooks (the operator's approval hooks and, on a hybrid node,
        # its job admission rules and probes), as configured.
        orchestrator = ctx.agent_config.get("Orchestrator")
        if isinstance(orchestrator, Mapping) and "ApprovalHooks" in orchestrator:
            item["Orchestrator"] = {"ApprovalHooks": redact(orchestrator["ApprovalHooks"])}
        if isinstance(ctx.agent_config.get("JobAdmissionControl"), Mapping):
            item["JobAdmissionControl"] = redact(ctx.agent_config["JobAdmissionControl"])
        # Which hook decided the latest bids, when this requester keeps that (the API serves
        # other orchestrator implementations too, which may not).
        recent = getattr(ctx.orchestrator, "recent_bid_decisions", None)
        if callable(recent) and isinstance(item.get("Orchestrator", {}), dict):
            item.setdefault("Orchestrator", {})["RecentBidDecisions"] = recent()
    return json_response({"Node": item, "node": item})


async def _update(request: web.Request, node_id: str, body: dict[str, Any]) -> web.Response:
    action = body_str(body, "action").strip().lower()
    message = body_str(body, "message")
    if not node_id:
        raise InvalidRequest("missing node ID", details={"Field": "NodeID"})
    if action not in _ACTIONS:
        success, error = False, "unsupported action"
    else:
        try:
            success, error = await context(request).orchestrator.update_node(
                node_id, action, message
            )
        except BacalhauError as err:
            # Bacalhau answers node updates with 200 and the outcome in the body.
            success, error = False, err.message
    return json_response({"Success": success, "Error": error, "success": success, "error": error})


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest(
            "the request body must be a JSON object",
            hint='send {"NodeID": "...", "Action": "approve", "Message": "..."}',
        )
    return body


async def put_node(request: web.Request) -> web.Response:
    body = await _body(request)
    return await _update(request, request.match_info["node_id"], body)


async def post_nodes(request: web.Request) -> web.Response:
    body = await _body(request)
    return await _update(request, body_str(body, "nodeID"), body)


def add_routes(app: web.Application) -> None:
    prefix = "/api/v1/orchestrator/nodes"
    app.router.add_get(prefix, list_nodes)
    app.router.add_post(prefix, post_nodes)
    app.router.add_get(prefix + "/{node_id}", get_node)
    app.router.add_put(prefix + "/{node_id}", put_node)
