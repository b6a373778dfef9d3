"""The membership core under asyncio: the real clock, a real network, observers.

::

    runner = MembershipRunner(core, network)
    async with runner:                     # ticks the core in a TaskGroup
        server_side_adapter(runner.deliver)
        runner.subscribe(on_member_event)  # or: async for event in runner.events()
        ...
    # leaving the context says goodbye (a signed "leaving" record) unless told otherwise

Sends are fire-and-forget, as the protocol expects of a datagram network: a failed send is
counted and otherwise ignored (the protocol's own retries and indirect probes cover it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Protocol

from bacalhau.gossip._core import Membership
from bacalhau.gossip._messages import Effects, MemberEvent, MemberInfo, Message, Outbound
from bacalhau.gossip._metrics import GossipMetrics
from bacalhau.gossip._record import NodeRecord

log = logging.getLogger(__name__)

#: The loop wakes at least this often even with no timer due (cheap; bounds any drift).
_MAX_SLEEP_SECONDS = 1.0
#: How often a node running twinned says so, at most.
_CONFLICT_REPEAT_SECONDS = 60.0


class Network(Protocol):
    """Delivers one message; raises on failure (the runner only counts failures)."""

    async def send(self, outbound: Outbound) -> None: ...


class MembershipRunner:
    """Runs a :class:`Membership` core with the real clock; an async context manager.

    ``deliver`` is what the server side of the network calls for each received message.
    On exit the member leaves gracefully (``leave_on_exit``), spending at most
    ``leave_grace`` seconds pushing its "leaving" record to others.
    """

    def __init__(
        self,
        core: Membership,
        network: Network,
        *,
        clock: Callable[[], float] = time.monotonic,
        leave_on_exit: bool = True,
        leave_grace: float = 0.3,
    ) -> None:
        self._core = core
        self._network = network
        self._clock = clock
        self._leave_on_exit = leave_on_exit
        self._leave_grace = leave_grace
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: asyncio.TaskGroup | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._callbacks: list[Callable[[MemberEvent], None]] = []
        self._queues: list[asyncio.Queue[MemberEvent]] = []
        self.send_failures = 0
        #: Identity conflicts seen (see :meth:`_say_if_twinned`) and when last said.
        self._conflicts = 0
        self._conflict_said_at = -_CONFLICT_REPEAT_SECONDS

    # -- reading ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._core.node_id

    @property
    def metrics(self) -> GossipMetrics:
        return self._core.metrics

    def member(self, node_id: str) -> MemberInfo | None:
        return self._core.member(node_id)

    def members(self) -> list[MemberInfo]:
        return self._core.members()

    @property
    def local_record(self) -> NodeRecord:
        return self._core.local_record

    # -- observers -------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]:
        """Call ``callback`` for every member event; returns the unsubscribe function.

        Callbacks run on the event loop and must not block; an exception is logged and the
        callback stays subscribed.
        """
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    async def events(self) -> AsyncIterator[MemberEvent]:
        """Every member event from now on, as an async iterator (unbounded buffer)."""
        queue: asyncio.Queue[MemberEvent] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    # -- feeding the core ------------------------------------------------------------------------

    def deliver(self, sender: str, message: Message) -> None:
        """Hand a received message to the core (``sender``: the authenticated node ID)."""
        self._dispatch(self._core.receive(sender, message, self._clock()))
        self._say_if_twinned()
        self._wake.set()

    def _say_if_twinned(self) -> None:
        """Say loudly (once a minute at most) when a record of this node's ID, newer than
        its own, comes from another address: another process runs with this node's
        identity, and each replaces the other in the cluster's view (or, said once, an
        earlier run of this node had that address and a clock ahead of this one's)."""
        seen = self._core.metrics.identity_conflicts
        if seen == self._conflicts:
            return
        self._conflicts = seen
        now = self._clock()
        if now - self._conflict_said_at < _CONFLICT_REPEAT_SECONDS:
            return
        self._conflict_said_at = now
        log.error(
            "another process runs with this node's identity (node ID %s) at %s: each takes "
            "the other's place in the cluster, which sees one node flapping between the two. "
            "Stop one of them; a copied data dir needs an identity of its own (start the copy "
            "without its node.key and TLS files, and certify it anew). (Said once and not "
            "again: an earlier run of this node had that address.)",
            self._core.node_id,
            self._core.conflicting_address,
        )

    def publish(self, record: NodeRecord) -> None:
        """Publish a new version of this node's record (capacity, labels, ...)."""
        self._dispatch(self._core.publish(record, self._clock()))
        self._wake.set()

    async def leave(self) -> None:
        """Leave the cluster gracefully: spread a signed "leaving" record, then stop ticking."""
        self._dispatch(self._core.leave(self._clock()))
        self._wake.set()
        await asyncio.sleep(self._leave_grace)

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> MembershipRunner:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._loop_task = self._tasks.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None and self._loop_task is not None
        try:
            if exc is None and self._leave_on_exit:
                await self.leave()
        finally:
            self._stopping = True
            self._wake.set()
            self._loop_task.cancel()
            tasks, self._tasks = self._tasks, None
            # Not the body's exception: a TaskGroup would wrap it in an ExceptionGroup, and
            # whoever started this runner should see its own error as it was raised.
            await tasks.__aexit__(None, None, None)

    async def _run(self) -> None:
        while not self._stopping:
            self._dispatch(self._core.tick(self._clock()))
            delay = self._core.next_wakeup() - self._clock()
            self._wake.clear()
            if delay > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the event, and this loop would never end.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(delay, _MAX_SLEEP_SECONDS)):
                        await self._wake.wait()
            else:
                await asyncio.sleep(0)

    def _dispatch(self, effects: Effects) -> None:
        if self._tasks is not None:
            for outbound in effects.messages:
                self._tasks.create_task(self._send(outbound))
        for event in effects.events:
            for callback in list(self._callbacks):
                try:
                    callback(event)
                except Exception:
                    log.exception("membership observer %r failed", callback)
            for queue in self._queues:
                queue.put_nowait(event)

    async def _send(self, outbound: Outbound) -> None:
        try:
            await self._network.send(outbound)
        except Exception as e:  # a datagram lost: the protocol copes, so only count it
            self.send_failures += 1
            log.debug(
                "membership: %s to %s failed: %s",
                type(outbound.message).__name__,
                outbound.address,
                e,
            )
