"""The asyncio runner: real clock, observers, publish and leave, over an in-process network."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from bacalhau.gossip import (
    GossipSettings,
    MemberEvent,
    MemberEventKind,
    Membership,
    MembershipRunner,
    NodeRecord,
    Outbound,
)
from bacalhau.models import Resources
from tests.gossip.harness import CODEC, identity

FAST = GossipSettings(
    probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05, join_retry_interval=0.2
)


class InProcessNetwork:
    """A real gossip ``Network`` for members in one event loop: a send is delivered to the
    runner listening at the address (on a later loop turn, like a datagram), unless the
    sender pinned another node."""

    def __init__(self) -> None:
        self.listening: dict[str, MembershipRunner] = {}

    def endpoint(self, node_id: str) -> Endpoint:
        return Endpoint(self, node_id)


class Endpoint:
    def __init__(self, network: InProcessNetwork, node_id: str) -> None:
        self._network = network
        self._node_id = node_id

    async def send(self, outbound: Outbound) -> None:
        runner = self._network.listening.get(outbound.address)
        if runner is None or (outbound.node_id not in (None, runner.node_id)):
            raise ConnectionError(f"nobody at {outbound.address}")
        asyncio.get_running_loop().call_soon(runner.deliver, self._node_id, outbound.message)


def runner(network: InProcessNetwork, n: int, seeds: list[str]) -> MembershipRunner:
    ident = identity(n)
    address = f"node{n}:4222"
    core = Membership(
        identity=ident,
        record=NodeRecord(node_id=ident.node_id, version=time.time_ns(), grpc_address=address),
        codec=CODEC,
        settings=FAST,
        seeds=seeds,
    )
    r = MembershipRunner(core, network.endpoint(ident.node_id), leave_on_exit=True)
    network.listening[address] = r
    return r


async def next_event(events: asyncio.Queue[MemberEvent], kind: MemberEventKind) -> MemberEvent:
    while True:
        event = await asyncio.wait_for(events.get(), timeout=10)
        if event.kind is kind:
            return event


@pytest.mark.timeout(60)
async def test_observers_see_joins_updates_and_departures() -> None:
    network = InProcessNetwork()
    a = runner(network, 21, [])
    b = runner(network, 22, ["node21:4222"])
    received: asyncio.Queue[MemberEvent] = asyncio.Queue()
    called: list[MemberEvent] = []

    async def follow() -> None:
        async for event in a.events():
            received.put_nowait(event)

    def broken(event: MemberEvent) -> None:
        raise RuntimeError("an observer bug must not stop the membership")

    async with a, asyncio.TaskGroup() as tasks:
        follower = tasks.create_task(follow())
        await asyncio.sleep(0)  # the iterator is subscribed once it first runs
        a.subscribe(broken)
        unsubscribe = a.subscribe(called.append)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(b)
            joined = await next_event(received, MemberEventKind.JOINED)
            assert joined.member.node_id == b.node_id

            b.publish(replace(b.local_record, available_capacity=Resources(cpu=1.5)))
            updated = await next_event(received, MemberEventKind.UPDATED)
            assert updated.member.record.available_capacity.cpu == 1.5
            assert [e.kind for e in called] == [MemberEventKind.JOINED, MemberEventKind.UPDATED]
            unsubscribe()
        # B left on exit: a signed goodbye, not a failure.
        left = await next_event(received, MemberEventKind.LEFT)
        assert left.member.node_id == b.node_id and left.member.record.leaving
        assert len(called) == 2
        follower.cancel()


@pytest.mark.timeout(60)
async def test_two_processes_with_one_identity_are_told_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A copied data dir started beside the original: two members with one node ID at two
    addresses take each other's place in every view. Each says so at ERROR, naming the
    other's address, rather than flap silently."""
    network = InProcessNetwork()
    ident = identity(7)

    def twin(address: str) -> MembershipRunner:
        core = Membership(
            identity=ident,
            record=NodeRecord(node_id=ident.node_id, version=time.time_ns(), grpc_address=address),
            codec=CODEC,
            settings=FAST,
            seeds=["node1:4222"],
        )
        r = MembershipRunner(core, network.endpoint(ident.node_id), leave_on_exit=False)
        network.listening[address] = r
        return r

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(runner(network, 1, []))
        original = await stack.enter_async_context(twin("original:4222"))
        copy = await stack.enter_async_context(twin("copy:4222"))
        with caplog.at_level("ERROR", logger="bacalhau.gossip._runner"):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                said = [r.getMessage() for r in caplog.records if "identity" in r.getMessage()]
                if any("copy:4222" in m for m in said) or any("original:4222" in m for m in said):
                    break
                await asyncio.sleep(0.1)
        said = [r.getMessage() for r in caplog.records if "another process runs" in r.getMessage()]
        assert said, "neither twin said anything"
        assert ident.node_id in said[0] and "copied data dir" in said[0]
        assert original.metrics.identity_conflicts + copy.metrics.identity_conflicts >= 1
