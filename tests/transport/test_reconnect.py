"""A node restarted at the same address is reached by the first call after it listens
again, though the requester's channel to it was still backing off from its downtime."""

from __future__ import annotations

import pytest

from bacalhau import errors
from bacalhau.transport import ComputeClient, NodeServer
from tests.transport.cluster import Cluster
from tests.transport.test_ask_batches import BiddingCompute, _ask, _bid_of


async def test_the_first_call_after_a_restart_reaches_the_node(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = BiddingCompute(node_id=compute.node_id)
    first = NodeServer(compute.identity, compute.files, "127.0.0.1", 0)
    first.add_compute_handler(handler)
    async with ComputeClient(requester.identity, requester.files) as client:
        async with first:
            address = first.address
            client.register_node(compute.node_id, address)
            assert _bid_of(await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 1)))
        # Down: the calls fail, and the channel backs off between its attempts.
        for n in range(3):
            with pytest.raises(errors.Unavailable):
                await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 10 + n))
        port = int(address.rsplit(":", 1)[1])
        again = NodeServer(compute.identity, compute.files, "127.0.0.1", port)
        again.add_compute_handler(handler)
        async with again:
            answer = await client.ask_for_bid(compute.node_id, _ask(compute.node_id, 2))
            assert _bid_of(answer) == ("e-batch-2", [2])
