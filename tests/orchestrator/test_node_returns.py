"""The node directory notes when a compute node joined, came back from the dead or restarted:
asks that failed to reach it before then (see ``_attempts``) no longer hold its jobs back."""

from __future__ import annotations

import time
from pathlib import Path

from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._nodes import NodeDirectory
from tests.orchestrator.node_view import StaticNodeView, compute_node_info


class _Book:
    def register_node(self, node_id: str, address: str) -> None:
        pass


def _back_since(directory: NodeDirectory) -> int:
    (node,) = directory.compute_nodes()
    return node.back_since_ns


async def test_joining_returning_and_restarting_are_noted_and_updates_are_not(
    tmp_path: Path,
) -> None:
    view = StaticNodeView()
    directory = NodeDirectory(
        self_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        view=view,
        approvals=ApprovalStore(tmp_path / "nodes.db"),
        address_book=_Book(),
    )
    async with directory:
        before = time.time_ns()
        await view.join(compute_node_info("n1"))
        joined = _back_since(directory)
        assert joined >= before

        smaller = compute_node_info("n1", free=1).compute
        assert smaller is not None
        await view.publish_capacity("n1", available=smaller.available_capacity)
        await view.suspect("n1")
        await view.join(compute_node_info("n1"))  # the suspicion refuted
        assert _back_since(directory) == joined

        await view.kill("n1")
        await view.come_back("n1")
        returned = _back_since(directory)
        assert returned > joined

        await view.restart("n1")
        assert _back_since(directory) > returned
        # Not on the wire: it is the requester's own bookkeeping.
        (node,) = directory.compute_nodes()
        assert not [key for key in node.to_dict() if "back" in key.lower()]
