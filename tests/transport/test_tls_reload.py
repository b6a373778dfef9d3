"""A node's TLS material replaced while it runs: its server presents the new certificate from
the next handshake, and its clients open new channels with it. Shown by moving a node from
one cluster CA to another, which only a real handshake with the new material can pass."""

from __future__ import annotations

import pytest

from bacalhau import errors
from bacalhau.models import CancelExecutionRequest
from bacalhau.transport import ComputeClient, NodeServer, TlsMaterial
from tests.transport.cluster import Cluster, RecordingCompute


async def _cancel(client: ComputeClient, node_id: str) -> None:
    await client.cancel_execution(node_id, CancelExecutionRequest("e-1", "test"))


async def test_a_server_presents_reloaded_material_from_the_next_handshake(
    cluster: Cluster, foreign_cluster: Cluster
) -> None:
    node = cluster.node()
    tls = TlsMaterial(node.files)
    handler = RecordingCompute()
    server = NodeServer(node.identity, tls)
    server.add_compute_handler(handler)
    async with server:
        member = cluster.node()
        async with ComputeClient(member.identity, member.files) as client:
            client.register_node(node.node_id, server.address)
            await _cancel(client, node.node_id)

        # The node is certified by the other CA now, and trusts only that one.
        foreign_cluster.ca.issue_node_certificate(node.identity)
        tls.reload()
        assert tls.generation == 1

        async with ComputeClient(member.identity, member.files, timeout=3) as client:
            client.register_node(node.node_id, server.address)
            with pytest.raises(errors.Unavailable):
                await _cancel(client, node.node_id)
        foreign = foreign_cluster.node()
        async with ComputeClient(foreign.identity, foreign.files) as client:
            client.register_node(node.node_id, server.address)
            await _cancel(client, node.node_id)
    assert [src for _, src, _ in handler.calls] == [member.node_id, foreign.node_id]


async def test_a_client_opens_new_channels_with_reloaded_material(
    cluster: Cluster, foreign_cluster: Cluster
) -> None:
    old_peer, new_peer = cluster.node(), foreign_cluster.node()
    me = cluster.node()
    tls = TlsMaterial(me.files)
    async with ComputeClient(me.identity, tls, timeout=3) as client:
        servers = [NodeServer(n.identity, n.files) for n in (old_peer, new_peer)]
        for server in servers:
            server.add_compute_handler(RecordingCompute())
        async with servers[0], servers[1]:
            client.register_node(old_peer.node_id, servers[0].address)
            client.register_node(new_peer.node_id, servers[1].address)
            await _cancel(client, old_peer.node_id)
            with pytest.raises(errors.Unavailable):
                await _cancel(client, new_peer.node_id)

            foreign_cluster.ca.issue_node_certificate(me.identity)
            tls.reload()
            await _cancel(client, new_peer.node_id)  # a new channel, with the new material
            with pytest.raises(errors.Unavailable):
                await _cancel(client, old_peer.node_id)  # its channel was replaced too


def test_unusable_files_keep_the_old_material(cluster: Cluster) -> None:
    node = cluster.node()
    tls = TlsMaterial(node.files)
    node.files.tls_key.write_text("not a key")
    with pytest.raises(errors.BacalhauError):
        tls.reload()
    assert tls.generation == 0
