from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bacalhau.compute import HeartbeatLoop, NodeRegistry
from bacalhau.errors import NodeNotFound, Unavailable
from bacalhau.models import (
    ComputeNodeInfo,
    Heartbeat,
    JoinRequest,
    JoinResponse,
    NodeInfo,
    NodeType,
    Resources,
)
from tests.compute.waiting import eventually


class Registry:
    """A requester's node registry, in memory: it can be down, refuse, or forget the node."""

    def __init__(self, *, interval: float = 0.02) -> None:
        self.interval = interval
        self.down = False
        self.refuse_joins = 0
        self.join_attempts = 0
        self.joins: list[JoinRequest] = []
        self.beats: list[Heartbeat] = []
        self.known: set[str] = set()

    async def join(self, request: JoinRequest) -> JoinResponse:
        self.join_attempts += 1
        if self.down:
            raise Unavailable("requester unreachable")
        if self.refuse_joins > 0:
            self.refuse_joins -= 1
            return JoinResponse(accepted=False, reason="pending approval")
        self.known.add(request.info.node_id)
        self.joins.append(request)
        return JoinResponse(accepted=True, heartbeat_interval=self.interval)

    async def heartbeat(self, heartbeat: Heartbeat) -> None:
        if self.down:
            raise Unavailable("requester unreachable")
        if heartbeat.node_id not in self.known:
            raise NodeNotFound(f"unknown node {heartbeat.node_id}")
        self.beats.append(heartbeat)


def describe_node() -> Callable[[], Awaitable[NodeInfo]]:
    state = {"running": 0}

    async def describe() -> NodeInfo:
        state["running"] += 1
        return NodeInfo(
            node_id="compute-1",
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=["noop"],
                available_capacity=Resources(cpu=1.5, memory=10**9),
                queue_capacity=Resources(cpu=0.5),
                running_executions=state["running"],
                enqueued_executions=2,
            ),
        )

    return describe


async def test_joins_once_the_requester_answers_then_beats() -> None:
    registry = Registry()
    registry.down = True
    assert isinstance(registry, NodeRegistry)
    async with HeartbeatLoop(
        registry=registry, describe=describe_node(), initial_backoff=0.01, max_backoff=0.02
    ) as loop:
        await eventually(lambda: registry.join_attempts >= 3)
        assert not loop.joined
        registry.down = False
        async with asyncio.timeout(5):
            await loop.wait_joined()
        await eventually(lambda: len(registry.beats) >= 3)
    (join,) = registry.joins
    assert join.info.node_id == "compute-1"
    assert join.info.compute is not None and join.info.compute.execution_engines == ["noop"]
    beat = registry.beats[0]
    assert beat.node_id == "compute-1"
    assert beat.available_capacity == Resources(cpu=1.5, memory=10**9)
    assert beat.queue_used_capacity == Resources(cpu=0.5)
    assert beat.enqueued_executions == 2
    sequences = [b.sequence for b in registry.beats]
    assert sequences == sorted(set(sequences)) and sequences[0] == 1


async def test_rejoins_when_the_requester_forgot_the_node() -> None:
    registry = Registry()
    async with HeartbeatLoop(registry=registry, describe=describe_node()) as loop:
        await eventually(lambda: len(registry.beats) >= 2)
        registry.known.clear()  # the requester restarted and lost its node table
        await eventually(lambda: len(registry.joins) == 2)
        beats = len(registry.beats)
        await eventually(lambda: len(registry.beats) > beats)
        assert loop.join_count == 2


async def test_keeps_asking_while_the_join_is_refused() -> None:
    registry = Registry()
    registry.refuse_joins = 2
    loop = HeartbeatLoop(
        registry=registry, describe=describe_node(), initial_backoff=0.01, max_backoff=0.01
    )
    async with loop:
        async with asyncio.timeout(5):
            await loop.wait_joined()
    assert registry.join_attempts == 3


async def test_rejoins_after_a_requester_outage() -> None:
    registry = Registry()
    async with HeartbeatLoop(
        registry=registry, describe=describe_node(), initial_backoff=0.01, rejoin_after=3
    ) as loop:
        await eventually(lambda: len(registry.beats) >= 1)
        registry.down = True
        await eventually(lambda: not loop.joined)  # three beats failed: joining again
        registry.down = False
        await eventually(lambda: loop.join_count == 2)
        beats = len(registry.beats)
        await eventually(lambda: len(registry.beats) > beats)


async def test_interval_override_wins() -> None:
    registry = Registry(interval=60)
    async with HeartbeatLoop(registry=registry, describe=describe_node(), interval=0.01):
        await eventually(lambda: len(registry.beats) >= 2)
