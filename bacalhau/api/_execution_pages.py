"""Pages of a job's executions for ``GET /jobs/{id}/executions``.

Bacalhau sorts a job's executions and cuts them at ``limit``, with no way to the rest (its
``NextToken`` is always empty). Here a page cut by ``limit`` ends with a ``NextToken`` that
goes on after its last execution (see :mod:`bacalhau.api._keyset`); a request with a token
pages in the token's order and size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bacalhau.api._keyset import Cursor, KeysetToken, keyset_page
from bacalhau.errors import BadQuery
from bacalhau.models import Execution

__all__ = ["execution_page"]

#: Sort value of an execution by each order the API takes.
_ORDERS: dict[str, Callable[[Execution], int | str]] = {
    "created_at": lambda e: e.create_time,
    "modified_at": lambda e: e.modify_time,
    "id": lambda e: e.id,
    "state": lambda e: int(e.compute_state),
}
#: Bacalhau v1.4's names of the orders.
_OLD_NAMES = {"create_time": "created_at", "modify_time": "modified_at"}
_BY_NUMBER = frozenset({"created_at", "modified_at", "state"})


def execution_page(
    executions: Sequence[Execution],
    *,
    order_by: str,
    reverse: bool,
    limit: int,
    next_token: str,
) -> tuple[list[Execution], str]:
    """The executions of one page and the token of the next ("" on the last page)."""
    after: Cursor | None = None
    if next_token:
        token = KeysetToken.decode(
            next_token, numeric=_BY_NUMBER, text={"id"}, listing="executions", min_limit=1
        )
        order_by, reverse, limit, after = token.order_by, token.reverse, token.limit, token.after
    order_by = order_by.lower() or "created_at"
    order_by = _OLD_NAMES.get(order_by, order_by)
    value = _ORDERS.get(order_by)
    if value is None:
        raise BadQuery(
            f"invalid order_by {order_by!r}",
            field="order_by",
            hint="use created_at, modified_at, id or state",
        )

    def cursor(e: Execution) -> Cursor:
        return value(e), e.id

    page, last = keyset_page(executions, cursor, reverse=reverse, limit=limit, after=after)
    return page, KeysetToken(order_by, reverse, limit, last).encode() if last else ""
