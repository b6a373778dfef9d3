"""The piggyback queue: each update is retransmitted a bounded number of times.

At most one update per member is queued: a newer one (a newer record, a death after a
suspicion) replaces the older, which would only be superseded on arrival. Updates sent the
fewest times go first, so fresh news spreads before old news is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

from bacalhau.gossip._messages import Update


@dataclass(slots=True)
class _Item:
    update: Update
    sent: int = 0


class BroadcastQueue:
    __slots__ = ("_items",)

    def __init__(self) -> None:
        #: node ID the update is about -> the update and how often it was sent
        self._items: dict[str, _Item] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, node_id: str, update: Update) -> None:
        self._items[node_id] = _Item(update)

    def take(self, limit: int, transmit_limit: int) -> tuple[Update, ...]:
        """Up to ``limit`` updates for one message; each counts as sent once more."""
        if not self._items:
            return ()
        items = self._items.items()
        chosen = sorted(items, key=_times_sent)[:limit] if len(items) > limit else list(items)
        for node_id, item in chosen:
            item.sent += 1
            if item.sent >= transmit_limit:
                del self._items[node_id]
        return tuple(item.update for _, item in chosen)


def _times_sent(entry: tuple[str, _Item]) -> int:
    return entry[1].sent
