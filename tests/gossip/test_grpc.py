"""Real members over real mutual-TLS gRPC on loopback, driven by the asyncio runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from bacalhau._proto.v1 import membership_pb2, membership_pb2_grpc
from bacalhau.gossip import (
    GossipSettings,
    MemberEvent,
    MemberEventKind,
    Membership,
    MembershipRunner,
    Message,
    NodeRecord,
)
from bacalhau.models import LivenessState, NodeType
from bacalhau.transport import (
    MEMBER_RECORD_CODEC,
    MembershipClient,
    NodeServer,
    channel_credentials,
    channel_options,
)
from tests.transport.cluster import Cluster, Node

#: Faster than the defaults so the test takes seconds; the protocol is the same.
FAST = GossipSettings(
    probe_interval=0.2,
    probe_timeout=0.1,
    gossip_interval=0.05,
    suspicion_min_seconds=0.4,
    push_pull_interval=2.0,
    join_retry_interval=0.3,
)


@dataclass
class Member:
    node: Node
    server: NodeServer
    runner: MembershipRunner
    events: list[MemberEvent] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def sees(self, node_id: str) -> LivenessState | None:
        info = self.runner.member(node_id)
        return info.state if info is not None else None


@asynccontextmanager
async def running_member(
    node: Node, seeds: list[str], *, leave_on_exit: bool = True
) -> AsyncIterator[Member]:
    runner: MembershipRunner | None = None

    def deliver(sender: str, message: Message) -> None:
        assert runner is not None
        runner.deliver(sender, message)

    async with AsyncExitStack() as stack:
        server = NodeServer(node.identity, node.files)
        server.add_membership(deliver)
        await stack.enter_async_context(server)
        client = await stack.enter_async_context(MembershipClient(node.identity, node.files))
        record = NodeRecord(
            node_id=node.node_id,
            version=time.time_ns(),
            roles=frozenset({NodeType.COMPUTE}),
            grpc_address=server.address,
            engines=("wasm",),
        )
        core = Membership(
            identity=node.identity,
            record=record,
            codec=MEMBER_RECORD_CODEC,
            settings=FAST,
            seeds=seeds,
        )
        runner = MembershipRunner(core, client, leave_on_exit=leave_on_exit)
        member = Member(node, server, runner)
        runner.subscribe(member.events.append)
        await stack.enter_async_context(runner)
        yield member


async def eventually(condition: Callable[[], bool], *, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_three_nodes_converge_and_a_stopped_one_is_declared_dead(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    a_node, b_node, c_node = cluster.node(), cluster.node(), cluster.node()
    async with running_member(a_node, []) as a:
        seeds = [a.server.address]
        async with running_member(b_node, seeds) as b:
            c_stack = AsyncExitStack()
            c = await c_stack.enter_async_context(
                running_member(c_node, seeds, leave_on_exit=False)
            )
            try:
                everyone = (a, b, c)
                await eventually(
                    lambda: all(
                        x.sees(y.node_id) is LivenessState.ALIVE
                        for x in everyone
                        for y in everyone
                        if x is not y
                    )
                )
                # Each learned the others' signed records, addresses included.
                info = b.runner.member(c.node_id)
                assert info is not None and info.record.grpc_address == c.server.address
            finally:
                # C dies without a goodbye: its runner and its server simply stop.
                await c_stack.aclose()

            await eventually(
                lambda: (
                    a.sees(c.node_id) is LivenessState.DEAD
                    and b.sees(c.node_id) is LivenessState.DEAD
                )
            )
            kinds = [e.kind for e in a.events if e.member.node_id == c.node_id]
            assert kinds[0] is MemberEventKind.JOINED
            assert kinds[-2:] == [MemberEventKind.SUSPECT, MemberEventKind.DEAD]
            assert a.sees(b.node_id) is LivenessState.ALIVE
            assert a.runner.metrics.rejected_bad_signature == 0

        # B left gracefully on exit: A sees it as left, not dead.
        await eventually(lambda: a.sees(b.node_id) is LivenessState.LEFT)


@pytest.mark.timeout(30)
async def test_a_membership_call_must_come_from_the_node_it_names(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    a_node, mallory = cluster.node(), cluster.node()
    async with running_member(a_node, []) as a:
        channel = grpc.aio.secure_channel(
            a.server.address,
            channel_credentials(mallory.files),
            options=channel_options(a.node_id),
        )
        try:
            stub = membership_pb2_grpc.MembershipServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Gossip(
                    membership_pb2.GossipRequest(sender_node_id=cluster.node().node_id),
                    timeout=5,
                )
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            received = a.runner.metrics.messages_received
            # Speaking as itself, the same call goes through.
            await stub.Gossip(
                membership_pb2.GossipRequest(sender_node_id=mallory.node_id), timeout=5
            )
            assert a.runner.metrics.messages_received == received + 1
        finally:
            await channel.close(None)


@pytest.mark.timeout(30)
async def test_a_node_from_another_cluster_cannot_join(tmp_path: Path) -> None:
    ours, theirs = Cluster(tmp_path), Cluster(tmp_path, "foreign")
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_member(ours.node(), []))
        stranger = await stack.enter_async_context(
            running_member(theirs.node(), [a.server.address])
        )
        await eventually(lambda: stranger.runner.send_failures >= 3)
        assert [m.node_id for m in a.runner.members()] == [a.node_id]
        assert [m.node_id for m in stranger.runner.members()] == [stranger.node_id]
        assert a.runner.metrics.messages_received == 0
