"""At submit, a verified job asking for more replicas than the cluster has compute nodes is
refused in terms of replicas on distinct nodes (not partitions), naming ``Count``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute
from tests.orchestrator.test_false_proposals import verified_job


@pytest.mark.parametrize(
    ("nodes", "hint"), [(2, "lower Count to 2 or less"), (1, "add compute nodes")]
)
async def test_too_many_replicas_for_the_cluster_are_refused_as_replicas(
    tmp_path: Path, nodes: int, hint: str
) -> None:
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=RecordingCompute(),
        node_view=view,
        # Not just started: the nodes it sees are all there are.
        settings=SchedulerSettings(rejoin_grace=0),
    )
    async with orch:
        for i in range(nodes):
            await view.join(compute_node_info(f"node-{i}"))
        with pytest.raises(InvalidJobSpec) as refused:
            await orch.submit_job(verified_job(3))
        assert refused.value.message == (
            f"Count 3 asks for 3 replicas of a verified job, each on a distinct node, and "
            f"this cluster has {nodes} compute node(s)"
        )
        assert "partition" not in refused.value.message
        assert refused.value.field == "Count" and refused.value.hint.startswith(hint)
        # As many replicas as nodes (at least two) are fine.
        if nodes >= 2:
            assert (await orch.submit_job(verified_job(nodes))).job_id
