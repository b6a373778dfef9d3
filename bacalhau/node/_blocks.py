"""Which members the block exchange asks: the gossip view, seen through storage's eyes."""

from __future__ import annotations

from collections.abc import Sequence

from bacalhau.gossip import MembershipRunner
from bacalhau.models import NodeType
from bacalhau.storage import BlockPeer, Member, order_providers
from bacalhau.storage.cid import CID


class ClusterProviders:
    """A :class:`bacalhau.storage.ProviderFinder` over the live members of the cluster: those
    advertising the root first, then compute nodes, then the rest (a requester keeps the data
    users upload). ``runner`` is attached once the gossip member runs."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self.runner: MembershipRunner | None = None

    def providers(self, root: CID) -> Sequence[BlockPeer]:
        runner = self.runner
        if runner is None:
            return []
        members = [
            Member(
                BlockPeer(m.node_id, m.record.grpc_address),
                m.record.held_roots,
                NodeType.COMPUTE in m.record.roles,
            )
            for m in runner.members()
            if m.node_id != self._node_id and m.record.grpc_address and not m.state.is_down()
        ]
        return order_providers(root, members)
