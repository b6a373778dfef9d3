"""A job whose executions would all publish to one S3 object is accepted (Bacalhau does the
same) with a warning saying only one result would be kept; a Key naming the execution, a
single partition, or another publisher gets none. A real orchestrator and SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.orchestrator.node_view import StaticNodeView, compute_node_info


def _job(count: int, key: str, publisher: str = "s3", job_type: str = "batch") -> Job:
    task: dict[str, Any] = {
        "Name": "main",
        "Engine": {"Type": "noop"},
        "Publisher": {"Type": publisher, "Params": {"Bucket": "results", "Key": key}},
        # No compute node here: the partitions may wait for nodes to join.
        "Timeouts": {"QueueTimeout": 60},
    }
    if publisher != "s3":
        task["Publisher"] = {"Type": publisher}
    return Job.from_dict({"Type": job_type, "Count": count, "Tasks": [task]})


@pytest.mark.parametrize(
    ("job", "warned"),
    [
        (_job(2, "out/{jobID}"), True),
        (_job(1, "out/{jobID}", job_type="daemon"), True),
        (_job(2, "out/{jobID}/{executionID}"), False),
        (_job(2, "out/{nodeID}"), False),
        (_job(1, "out/{jobID}"), False),
        (_job(2, "", publisher="local"), False),
    ],
)
async def test_executions_sharing_one_s3_object_are_warned_of(
    tmp_path: Path, job: Job, warned: bool
) -> None:
    async with Orchestrator(
        node_info=NodeInfo(node_id="n-warn", node_type=NodeType.REQUESTER),
        data_dir=tmp_path / "req",
        compute=NoComputeNodes(),
        node_view=StaticNodeView(),
    ) as orch:
        result = await orch.submit_job(job)
    shared = [w for w in result.warnings if "same S3 key" in w]
    assert bool(shared) == warned, result.warnings
    if warned:
        assert "add {executionID} to the Key" in shared[0]


@pytest.mark.parametrize(("job_type", "word"), [("batch", "partitions"), ("service", "replicas")])
async def test_more_executions_than_nodes_is_refused_in_the_jobs_own_words(
    tmp_path: Path, job_type: str, word: str
) -> None:
    task = {"Name": "main", "Engine": {"Type": "noop"}}
    job = Job.from_dict({"Type": job_type, "Count": 3, "Tasks": [task]})
    view = StaticNodeView()
    async with Orchestrator(
        node_info=NodeInfo(node_id="n-count", node_type=NodeType.REQUESTER),
        data_dir=tmp_path / "req",
        compute=NoComputeNodes(),
        node_view=view,
    ) as orch:
        await view.join(compute_node_info("node-a"))
        with pytest.raises(InvalidJobSpec) as refused:
            await orch.submit_job(job)
    assert f"Count 3 asks for more {word} than the 1 compute node(s)" in refused.value.message
    assert refused.value.field == "Count"
