"""Keyset paging of lists the APIs sort in memory: a job's executions, the nodes.

A page cut by its ``limit`` ends with a token that goes on after its last item, by that item's
sort value and ID (a keyset cursor), in the order and size the listing was asked in: an item
added meanwhile neither repeats one nor hides one (unless its sort value moves). Bacalhau's
answers to these listings carry no token at all, so the token's form is ours: base64url (no
padding) of the JSON ``[order, reverse, limit, sort value, ID]``. The gRPC API's
``ListExecutions`` tokens have the same form (in creation order).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bacalhau.errors import BadQuery

__all__ = ["Cursor", "KeysetToken", "keyset_page"]

#: An item's place in its listing: its sort value (a number or text), then its ID.
Cursor = tuple[int | float | str, str]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeysetToken:
    """Where a listing goes on: after ``after``, in ``order_by`` (reversed when
    ``reverse``), ``limit`` items a page (0: no limit)."""

    order_by: str
    reverse: bool
    limit: int
    after: Cursor

    def encode(self) -> str:
        raw = json.dumps(
            [self.order_by, self.reverse, self.limit, *self.after], separators=(",", ":")
        )
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(
        cls,
        token: str,
        *,
        numeric: Collection[str],
        text: Collection[str],
        listing: str,
        min_limit: int = 0,
    ) -> KeysetToken:
        """The token ``token`` of a listing whose orders sort by a number (``numeric``) or
        by text (``text``), and whose tokens have a ``limit`` of ``min_limit`` or more (1 for
        a listing that makes them only for pages cut by a limit);
        :class:`~bacalhau.errors.BadQuery` naming ``next_token`` for any other, among them a
        cursor whose value is not of its order's kind (comparing it with the items' values
        would fail)."""
        try:
            padded = token + "=" * (-len(token) % 4)
            order_by, reverse, limit, value, item_id = json.loads(base64.urlsafe_b64decode(padded))
            if not (
                (order_by in numeric or order_by in text)
                and isinstance(reverse, bool)
                and isinstance(limit, int)
                and not isinstance(limit, bool)
                and limit >= min_limit
                and isinstance(item_id, str)
                and (
                    isinstance(value, int | float) and not isinstance(value, bool)
                    if order_by in numeric
                    else isinstance(value, str)
                )
            ):
                raise ValueError(token)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise BadQuery(
                f"invalid next_token {token[:100]!r}",
                field="next_token",
                hint=f"pass back the NextToken of a previous {listing} answer unchanged",
            ) from None
        return cls(order_by, reverse, limit, (value, item_id))


def keyset_page(
    items: Sequence[T],
    cursor: Callable[[T], Cursor],
    *,
    reverse: bool,
    limit: int,
    after: Cursor | None,
) -> tuple[list[T], Cursor | None]:
    """``items`` sorted by ``cursor`` (reversed when ``reverse``), those after ``after``, at
    most ``limit`` (0: all); and the cursor of the page's last item when more follow."""
    ordered = sorted(items, key=cursor, reverse=reverse)
    if after is not None:
        ordered = [i for i in ordered if (cursor(i) < after if reverse else cursor(i) > after)]
    if not limit or len(ordered) <= limit:
        return ordered, None
    return ordered[:limit], cursor(ordered[limit - 1])
