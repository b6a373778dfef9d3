"""Which requesters may command this compute node.

Holding a certificate from the cluster CA makes a node a member, not a requester of ours: any
member could otherwise make this node run a job. A compute node therefore obeys (AskForBid,
BidAccepted, BidRejected, CancelExecution) only requesters it trusts:

- the requesters at its configured seed addresses (``--seed``, ``--orchestrator-address``),
  by the node ID each proved with its TLS certificate and a signed answer to this node's
  fresh nonce (NodeService.Identify), if it says it runs the requester role there;
- the requesters its operator listed (``trusted_requesters`` / ``--trusted-requester``);
- itself, in a hybrid node.

Nothing a member claims about itself in its gossip record adds to this set (any member may
call itself a requester there), so trust is only ever granted by this node.
Everything else is refused with :class:`~bacalhau.errors.PermissionDenied`, logged and counted.

A requester may send its first command a moment before this node has identified it (it
learns of this node by gossip and dispatches work at once). So while an identification is
under way, a command from a sender not yet trusted waits for it to settle, briefly, before it
is judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

from bacalhau.errors import PermissionDenied

_log = logging.getLogger(__name__)

#: Longest a command waits for an identification under way (below a requester's call deadline).
DEFAULT_SETTLE_TIMEOUT = 5.0


class RequesterTrust:
    """The set of requester node IDs this compute node obeys, and the gate every command
    passes (:meth:`check`)."""

    def __init__(
        self,
        trusted: Iterable[str] = (),
        *,
        expect_identify: bool = False,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
    ) -> None:
        """``trusted``: requesters trusted from the start (configured ones, this node in a
        hybrid). ``expect_identify``: this node will identify requesters at seed addresses;
        until that starts, commands from unknown senders wait as if it were under way."""
        self._trusted = set(trusted)
        self._under_way = 0
        self._settled = asyncio.Event()
        self._settle_timeout = settle_timeout
        self._refused: Counter[str] = Counter()
        if not expect_identify:
            self._settled.set()

    @property
    def trusted(self) -> frozenset[str]:
        """The requester node IDs this node obeys now."""
        return frozenset(self._trusted)

    @property
    def refused(self) -> Mapping[str, int]:
        """How many commands were refused, by sender node ID."""
        return dict(self._refused)

    @property
    def refused_total(self) -> int:
        return self._refused.total()

    def is_trusted(self, node_id: str) -> bool:
        return node_id in self._trusted

    def trust(self, node_id: str, *, why: str) -> None:
        """Obey ``node_id`` from now on (``why`` is logged once)."""
        if node_id not in self._trusted:
            self._trusted.add(node_id)
            _log.info("trusting requester %s: %s", node_id, why)

    @contextlib.contextmanager
    def identifying(self) -> Iterator[None]:
        """Mark an identification under way; commands from not-yet-trusted senders wait
        (at most ``settle_timeout``) for its end."""
        self._under_way += 1
        self._settled.clear()
        try:
            yield
        finally:
            self._under_way -= 1
            if self._under_way == 0:
                self._settled.set()

    async def check(self, node_id: str, command: str) -> None:
        """Return if ``node_id`` may send ``command`` (e.g. "AskForBid") to this node; raise
        :class:`PermissionDenied` otherwise, before anything of the command is acted on."""
        if node_id in self._trusted:
            return
        if not self._settled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self._settle_timeout)
            if node_id in self._trusted:
                return
        self._refused[node_id] += 1
        _log.warning(
            "refused %s from node %s: not a trusted requester (%d refused so far)",
            command,
            node_id,
            self._refused[node_id],
        )
        raise PermissionDenied(
            f"node {node_id} is not a requester this compute node trusts",
            hint="a compute node obeys the requesters that proved their identity at its seed "
            "addresses, the requesters its operator lists with --trusted-requester, and "
            "itself in a hybrid node",
            component="Compute",
        )
