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
from bacalhau.api._keyset import Cursor, KeysetToken, keyset_page
from bacalhau.api._query import Query, body_str, read_json
from bacalhau.errors import BacalhauError, BadQuery, InvalidRequest
from bacalhau.models import Membership, NodeState, Resources, parse_selector, selector_matches
from bacalhau.orchestrator._api import OrchestratorAPI

_ACTIONS = ("approve", "reject", "delete")


def _available(node: NodeState) -> Resources:
    compute = node.info.compute
    return compute.available_capacity if compute is not None else Resources()


_NODE_ORDER: dict[str, Callable[[NodeState], int | float | str]] = {
    "id": lambda n: n.info.node_id,
    "type": lambda n: n.info.node_type.value,
    # The most free first, as Bacalhau sorts them (``reverse`` puts the fullest first).
    "available_cpu": lambda n: -_available(n).cpu,
    "available_memory": lambda n: -_available(n).memory,
    "available_disk": lambda n: -_available(n).disk,
    "available_gpu": lambda n: -_available(n).gpu,
    "approval": lambda n: n.membership.value,
    "status": lambda n: n.connection.value,
    "liveness": lambda n: n.liveness.value,
}
#: Orders by a number (the others sort by text).
_NUMERIC_ORDERS = frozenset(
    {"available_cpu", "available_memory", "available_disk", "available_gpu"}
)


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
    """The nodes, filtered and sorted; a page cut by ``limit`` ends with a ``NextToken`` that
    goes on after its last node, in the order and size it was made with (Bacalhau's is always
    empty)."""
    q = Query(request)
    order_by, reverse, limit = q.text("order_by", "id").lower(), q.flag("reverse"), q.count("limit")
    after: Cursor | None = None
    if token := q.text("next_token"):
        kept = KeysetToken.decode(
            token,
            numeric=_NUMERIC_ORDERS,
            text=_NODE_ORDER.keys() - _NUMERIC_ORDERS,
            listing="node list",
            min_limit=1,
        )
        order_by, reverse, limit, after = kept.order_by, kept.reverse, kept.limit, kept.after
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

    def cursor(n: NodeState) -> Cursor:
        return key(n), n.info.node_id

    nodes = [
        n
        for n in await context(request).orchestrator.list_nodes()
        if selector_matches(selector, n.info.labels)
        and (not approval or n.membership.value == approval)
        and (not status or n.connection.value == status)
    ]
    page, last = keyset_page(nodes, cursor, reverse=reverse, limit=limit, after=after)
    next_token = KeysetToken(order_by, reverse, limit, last).encode() if last else ""
    items = [n.to_dict() for n in page]
    return json_response({"Nodes": items, "nodes": items, "NextToken": next_token})


async def get_node(request: web.Request) -> web.Response:
    ctx = context(request)
    node = await ctx.orchestrator.get_node(request.match_info["node_id"])
    item = described(node, ctx.orchestrator, ctx.agent_config)
    return json_response({"Node": item, "node": item})


def described(
    node: NodeState, orchestrator: OrchestratorAPI, agent_config: Mapping[str, Any]
) -> dict[str, Any]:
    """``node``'s JSON as both APIs describe it: for this requester itself, with its accept
    hooks (the operator's approval hooks and, on a hybrid node, its job admission rules and
    probes) as configured, secrets redacted, and which hook decided its latest bids."""
    item = node.to_dict()
    if node.info.node_id == orchestrator.node_info().node_id:
        hooks = agent_config.get("Orchestrator")
        if isinstance(hooks, Mapping) and "ApprovalHooks" in hooks:
            item["Orchestrator"] = {"ApprovalHooks": redact(hooks["ApprovalHooks"])}
        if isinstance(agent_config.get("JobAdmissionControl"), Mapping):
            item["JobAdmissionControl"] = redact(agent_config["JobAdmissionControl"])
        # When this requester keeps them (the API serves other orchestrator implementations
        # too, which may not).
        recent = getattr(orchestrator, "recent_bid_decisions", None)
        if callable(recent) and isinstance(item.get("Orchestrator", {}), dict):
            item.setdefault("Orchestrator", {})["RecentBidDecisions"] = recent()
    return item


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
