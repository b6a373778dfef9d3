"""A peer that was down for a while and comes back at the same address is reachable again
at once, with real gRPC: a channel that kept backing off from the downtime would fail calls
for seconds, and gossip would declare a node that has just restarted dead again; and the
requester's first call to a restarted compute node reaches it."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bacalhau import errors
from bacalhau.gossip import Message
from bacalhau.gossip._messages import Outbound, Ping
from bacalhau.transport import ComputeClient, MembershipClient, NodeServer
from tests.transport.cluster import Cluster
from tests.transport.test_ask_batches import BiddingCompute, _ask, _bid_of


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_peer_back_at_its_address_is_reached_within_a_probe_timeout(
    cluster: Cluster,
) -> None:
    peer, prober = cluster.node(), cluster.node()
    port = _free_port()
    received: list[Message] = []

    def server() -> NodeServer:
        s = NodeServer(peer.identity, peer.files, "127.0.0.1", port)
        s.add_membership(lambda sender, message: received.append(message))
        return s

    address = f"127.0.0.1:{port}"
    ping = Outbound(peer.node_id, address, Ping(1, peer.node_id, "127.0.0.1:1"))
    async with MembershipClient(prober.identity, prober.files, timeout=1.0) as client:
        async with server():
            await client.send(ping)
        # Down for 8 s, probed as gossip would (a failed send is a lost datagram), so the
        # channel's reconnect backoff grows for as long as the peer is away (with a 5 s cap it
        # reached 3-4 s: the peer stayed unreachable for up to that long after it was back).
        down_until = time.monotonic() + 8
        while time.monotonic() < down_until:
            with pytest.raises(errors.BacalhauError):
                await client.send(ping)
            await asyncio.sleep(0.25)
        async with server():
            began = time.monotonic()
            while True:
                try:
                    await client.send(ping)
                    break
                except errors.BacalhauError:
                    assert time.monotonic() - began < 1.0, "the peer stayed unreachable"
                    await asyncio.sleep(0.05)
    assert len(received) == 2


async def test_the_first_call_after_a_restart_reaches_the_node(cluster: Cluster) -> None:
    """A compute node SIGKILLed and started again at the same address: the requester's
    first call reaches it, though the channel was still backing off from its downtime."""
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute(node_id=compute.node_id)
    port = _free_port()

    def server() -> NodeServer:
        s = NodeServer(compute.identity, compute.files, "127.0.0.1", port)
        s.add_compute_handler(handler)
        return s

    async with ComputeClient(requester.identity, requester.files) as client:
        client.register_node(compute.node_id, f"127.0.0.1:{port}")
        async with server():
            assert _bid_of(await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 1)))
        # Down: the calls fail, and the channel backs off between its attempts.
        for n in range(3):
            with pytest.raises(errors.Unavailable):
                await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 10 + n))
        async with server():
            answer = await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 2))
            assert _bid_of(answer) == ("e-batch-2", [2])
