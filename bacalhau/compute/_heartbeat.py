"""Join the requester, then tell it regularly that this node is alive and how busy it is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

from bacalhau.errors import BacalhauError
from bacalhau.models import Heartbeat, JoinRequest, JoinResponse, NodeInfo

_log = logging.getLogger(__name__)


@runtime_checkable
class NodeRegistry(Protocol):
    """The requester's node management, as a compute node sees it (transport implements it).

    ``heartbeat`` raises a non-retryable :class:`~bacalhau.errors.BacalhauError` (e.g.
    :class:`~bacalhau.errors.NodeNotFound`) when the requester refuses it, which makes the
    node join again; anything else (unreachable) is retried at the next beat.
    """

    async def join(self, request: JoinRequest) -> JoinResponse: ...

    async def heartbeat(self, heartbeat: Heartbeat) -> None: ...


class HeartbeatLoop:
    """Joins (retrying with backoff until the requester answers and accepts), then beats.

    ``describe`` returns the node's current record (its compute part carries the capacity the
    heartbeat reports). The interval is the requester's (``JoinResponse.heartbeat_interval``)
    unless ``interval`` overrides it. After ``rejoin_after`` beats in a row fail, the node
    joins again anyway: a requester that was down may have forgotten it.

    ``executions`` lists what the node still holds for the requester (under way, or finished
    and not yet reported); every join carries it, so a restarted requester can reconcile.
    """

    def __init__(
        self,
        *,
        registry: NodeRegistry,
        describe: Callable[[], Awaitable[NodeInfo]],
        interval: float | None = None,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
        rejoin_after: int = 3,
        executions: Callable[[], list[str]] | None = None,
    ) -> None:
        self._registry = registry
        self._describe = describe
        self._interval_override = interval
        self._interval = interval or 5.0
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._rejoin_after = rejoin_after
        self._executions = executions
        self._sequence = 0
        self._joins = 0
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def joined(self) -> bool:
        """Whether the requester currently knows this node."""
        return self._joined.is_set()

    @property
    def join_count(self) -> int:
        """How many times this node joined (more than once: the requester forgot it)."""
        return self._joins

    @property
    def sequence(self) -> int:
        return self._sequence

    async def wait_joined(self) -> None:
        await self._joined.wait()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="compute-heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> HeartbeatLoop:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        while True:
            await self._join()
            await self._beat_until_refused()

    async def _join(self) -> None:
        self._joined.clear()
        backoff = self._initial_backoff
        while True:
            try:
                info = await self._describe()
                held = self._executions() if self._executions is not None else None
                response = await self._registry.join(JoinRequest(info=info, executions=held))
            except asyncio.CancelledError:
                raise
            except Exception as err:
                _log.warning("joining the requester failed: %s; retrying in %.1fs", err, backoff)
            else:
                if response.accepted:
                    if self._interval_override is None and response.heartbeat_interval > 0:
                        self._interval = response.heartbeat_interval
                    self._joins += 1
                    self._joined.set()
                    _log.info("joined the requester (heartbeat every %.1fs)", self._interval)
                    return
                _log.warning(
                    "the requester refused this node: %s; retrying in %.1fs",
                    response.reason or "no reason given",
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _beat_until_refused(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self._interval)
            try:
                info = await self._describe()
                compute = info.compute
                self._sequence += 1
                beat = Heartbeat(node_id=info.node_id, sequence=self._sequence)
                if compute is not None:
                    beat.available_capacity = compute.available_capacity
                    beat.queue_used_capacity = compute.queue_capacity
                    beat.running_executions = compute.running_executions
                    beat.enqueued_executions = compute.enqueued_executions
                await self._registry.heartbeat(beat)
            except asyncio.CancelledError:
                raise
            except BacalhauError as err:
                if not err.retryable:
                    _log.warning("the requester refused a heartbeat (%s): joining again", err)
                    return
                failures += 1
                _log.warning("heartbeat failed: %s", err)
            except Exception as err:
                failures += 1
                _log.warning("heartbeat failed: %s", err)
            else:
                failures = 0
            if failures >= self._rejoin_after:
                _log.warning("%d heartbeats in a row failed: joining again", failures)
                return
