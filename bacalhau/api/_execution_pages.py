"""Pages of a job's executions for ``GET /jobs/{id}/executions``.

Bacalhau sorts a job's executions and cuts them at ``limit``, with no way to the rest (its
``NextToken`` is always empty). Here a page cut by ``limit`` ends with a ``NextToken`` that
goes on after its last execution: the job list's token (:class:`JobListToken`), whose cursor
is the last execution's sort value and ID, so that executions created meanwhile neither
repeat nor hide one. A request with a token pages in the token's order and size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bacalhau.api._query import JobListToken
from bacalhau.errors import BadQuery
from bacalhau.models import Execution

__all__ = ["execution_page"]

#: Sort value of an execution by each order the API takes (v1.5's names and v1.4's).
_ORDERS: dict[str, Callable[[Execution], int | str]] = {
    "created_at": lambda e: e.create_time,
    "create_time": lambda e: e.create_time,
    "modified_at": lambda e: e.modify_time,
    "modify_time": lambda e: e.modify_time,
    "id": lambda e: e.id,
    "state": lambda e: int(e.compute_state),
}
#: The name a token keeps for each order.
_CANONICAL = {"create_time": "created_at", "modify_time": "modified_at"}


def execution_page(
    executions: Sequence[Execution],
    *,
    order_by: str,
    reverse: bool,
    limit: int,
    next_token: str,
) -> tuple[list[Execution], str]:
    """The executions of one page and the token of the next ("" on the last page)."""
    after: tuple[Any, str] | None = None
    if next_token:
        token = JobListToken.decode(next_token)
        order_by, reverse, limit, after = token.sort_by, token.reverse, token.limit, token.after
        if after is None or order_by not in _ORDERS:
            raise BadQuery(
                f"invalid next_token {next_token[:100]!r}: not a token of this listing",
                field="next_token",
                hint="pass back the NextToken of a previous executions response unchanged",
            )
    order_by = order_by.lower() or "created_at"
    order_by = _CANONICAL.get(order_by, order_by)
    value = _ORDERS.get(order_by)
    if value is None:
        raise BadQuery(
            f"invalid order_by {order_by!r}",
            field="order_by",
            hint="use created_at, modified_at, id or state",
        )

    def key(e: Execution) -> tuple[Any, str]:
        return value(e), e.id

    ordered = sorted(executions, key=key, reverse=reverse)
    if after is not None:
        cursor = after
        ordered = [e for e in ordered if (key(e) < cursor if reverse else key(e) > cursor)]
    if not limit or len(ordered) <= limit:
        return ordered, ""
    page = ordered[:limit]
    last = page[-1]
    following = JobListToken(order_by, reverse, limit, 0, (value(last), last.id))
    return page, following.encode()
