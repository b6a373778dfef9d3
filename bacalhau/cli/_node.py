"""``bacalhau node ...``: list, describe, approve, reject, delete."""

from __future__ import annotations

import time

import click

from bacalhau.cli._render import cell_id, emit, next_page_hint, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.errors import InvalidRequest
from bacalhau.models import LivenessState, NodeState, format_cpu, format_size

_ORDER = (
    "id",
    "type",
    "available_cpu",
    "available_memory",
    "available_disk",
    "available_gpu",
    "approval",
    "status",
)


@click.group("node", cls=BacalhauGroup)
def node_group() -> None:
    """Inspect and manage the network's nodes."""


def _requester_now(nodes: list[NodeState]) -> int:
    """The requester's clock when it answered: it stamps each live node "last seen" with it.
    Ages counted from it do not depend on this machine's clock (which may be hours off);
    this machine's clock only when no node is alive."""
    alive = [n.last_seen_ns for n in nodes if n.liveness is LivenessState.ALIVE]
    return max(alive) if alive else time.time_ns()


def _last_seen(node: NodeState, now: int) -> str:
    """How long before ``now`` (the requester's time) the node was last known alive ("now"
    for a live one)."""
    if node.last_seen_ns <= 0:
        return "-"
    if node.liveness is LivenessState.ALIVE:
        return "now"
    ago = max(0.0, (now - node.last_seen_ns) / 1e9)
    if ago < 2:
        return "now"
    if ago < 120:
        return f"{ago:.0f}s ago"
    if ago < 7200:
        return f"{ago / 60:.0f}m ago"
    return f"{ago / 3600:.0f}h ago"


def _capacity(node: NodeState) -> list[str]:
    compute = node.info.compute
    if compute is None:
        return ["", "", "", ""]
    avail, total = compute.available_capacity, compute.max_capacity
    return [
        f"{format_cpu(avail.cpu)} / {format_cpu(total.cpu)}",
        f"{format_size(avail.memory)} / {format_size(total.memory)}",
        f"{format_size(avail.disk)} / {format_size(total.disk)}",
        f"{avail.gpu} / {total.gpu}",
    ]


def _reputation(node: NodeState) -> str:
    """The node's record of verified results: its score, then agreements and disagreements
    (``0.75 (+2 -0)``); "-" for a node that has none (not a compute node)."""
    record = node.reputation
    if record is None:
        return "-"
    return f"{record.score:.2f} (+{record.agreements} -{record.disagreements})"


def _has_record(node: NodeState) -> bool:
    record = node.reputation
    return record is not None and record.agreements + record.disagreements > 0


#: ``--show`` column groups, as Bacalhau names them (and ours, ``reputation``).
_SHOWN = frozenset({"labels", "capacity", "version", "features", "reputation"})


@node_group.command("list")
@click.option("--labels", default="", help="Label selector the nodes must match.")
@click.option("--filter-approval", default="", help="PENDING, APPROVED or REJECTED.")
@click.option("--filter-status", default="", help="CONNECTED or DISCONNECTED.")
@click.option(
    "--order-by",
    type=click.Choice(list(_ORDER), case_sensitive=False),
    default="id",
    show_default=True,
)
@click.option("--order-reversed", is_flag=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, help="0: all.")
@click.option("--next-token", default="", help="Go on from a previous page (its token).")
@click.option(
    "--show",
    default="labels,capacity",
    show_default=True,
    help="Extra columns: labels, capacity, version (version, architecture, OS), features "
    "(engines, inputs from, outputs), reputation (shown anyway once a node has a record of "
    "verified results).",
)
@output_option()
@pass_state
def node_list(
    state: CliState,
    labels: str,
    filter_approval: str,
    filter_status: str,
    order_by: str,
    order_reversed: bool,
    limit: int,
    next_token: str,
    show: str,
    output: str,
) -> None:
    """List nodes."""
    page = state.client().node_page(
        labels=labels,
        order_by=order_by,
        reverse=order_reversed,
        limit=limit,
        next_token=next_token,
        filter_approval=filter_approval,
        filter_status=filter_status,
    )
    _show_nodes(page.items, show, output)
    next_page_hint(page.next_token, limit)


def _show_nodes(nodes: list[NodeState], show: str, output: str) -> None:
    """Print ``nodes`` as ``output`` says, with the ``--show`` column groups in a table."""
    if not tabular(output):
        emit([n.to_dict() for n in nodes], output)
        return
    extras = {s.strip().lower() for s in show.split(",") if s.strip()}
    unknown = extras - _SHOWN
    if unknown:
        raise click.BadParameter(
            f"{', '.join(sorted(unknown))}: not a column group (use {', '.join(sorted(_SHOWN))})",
            param_hint="'--show'",
        )
    headers = ["ID", "TYPE", "APPROVAL", "STATUS", "LIVENESS", "LAST SEEN"]
    if "version" in extras:
        headers += ["VERSION", "ARCHITECTURE", "OS"]
    if "features" in extras:
        headers += ["ENGINES", "INPUTS FROM", "OUTPUTS"]
    if "capacity" in extras:
        headers += ["CPU", "MEMORY", "DISK", "GPU"]
    # Verified jobs' verdicts, once there are any: score (+agreements -disagreements).
    reputation = "reputation" in extras or any(_has_record(n) for n in nodes)
    if reputation:
        headers.append("REPUTATION")
    if "labels" in extras:
        headers.append("LABELS")
    rows = []
    now = _requester_now(nodes)
    for n in nodes:
        row = [cell_id(n.info.node_id), n.info.node_type.value, n.membership.value]
        row += [n.connection.value, n.liveness.value.upper(), _last_seen(n, now)]
        if "version" in extras:
            said = n.info.labels
            row += [
                n.info.version,
                said.get("Architecture", ""),
                said.get("Operating-System", ""),
            ]
        if "features" in extras:
            compute = n.info.compute
            kinds = (
                (compute.execution_engines, compute.storage_sources, compute.publishers)
                if compute is not None
                else ((), (), ())
            )
            row += [" ".join(k) for k in kinds]
        if "capacity" in extras:
            row += _capacity(n)
        if reputation:
            row.append(_reputation(n))
        if "labels" in extras:
            row.append(" ".join(f"{k}={v}" for k, v in sorted(n.info.labels.items())))
        rows.append(row)
    table(headers, rows)


@node_group.command("describe")
@click.argument("node_id")
@output_option(default="yaml", choices=("json", "yaml"))
@pass_state
def node_describe(state: CliState, node_id: str, output: str) -> None:
    """Show a node (ID or unique prefix); for a compute node, also its reputation (the
    requester's record of its verified results: agreements, disagreements and score); for
    the requester, also its approval hooks (name, type, timeout) and which hook decided its
    latest bids."""
    emit(state.client().describe_node(node_id), output)


def _update(state: CliState, node_id: str, action: str, message: str) -> None:
    ok, error = state.client().update_node(node_id, action, message)
    if not ok:
        raise InvalidRequest(f"cannot {action} node {node_id}: {error}")
    click.echo(f"Node {node_id}: {action} done.")


@node_group.command("approve")
@click.argument("node_id")
@click.option("-m", "--message", default="", help="Why (kept in the node's record).")
@pass_state
def node_approve(state: CliState, node_id: str, message: str) -> None:
    """Approve a node to join the network."""
    _update(state, node_id, "approve", message)


@node_group.command("reject")
@click.argument("node_id")
@click.option("-m", "--message", default="")
@pass_state
def node_reject(state: CliState, node_id: str, message: str) -> None:
    """Reject a node."""
    _update(state, node_id, "reject", message)


@node_group.command("delete")
@click.argument("node_id")
@click.option("-m", "--message", default="")
@pass_state
def node_delete(state: CliState, node_id: str, message: str) -> None:
    """Forget a node."""
    _update(state, node_id, "delete", message)
