"""Input sources in ranking: a node that does not advertise an input source type the job
reads is not asked to bid, and the waiting reason counts such nodes by the missing type."""

from __future__ import annotations

import random

from bacalhau.models import (
    ComputeNodeInfo,
    Job,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    normalise_job,
    validate_job,
)
from bacalhau.orchestrator._ranking import missing_input_source, rank_nodes
from bacalhau.orchestrator._waiting import waiting_reason

CAPACITY = Resources(cpu=4.0, memory=8 * 10**9, disk=10**11)
CID = "QmXe7gvqFfynvyYqMwq6Xi7U2AYBtB8WSUS812vJTtPYwD"


def _node(nid: str, sources: list[str]) -> NodeState:
    return NodeState(
        info=NodeInfo(
            node_id=nid,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=["docker"],
                publishers=["local"],
                storage_sources=sources,
                max_capacity=CAPACITY,
                available_capacity=CAPACITY,
                max_job_requirements=CAPACITY,
            ),
        )
    )


def _job(*sources: dict[str, object]) -> Job:
    job = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "docker", "Params": {"Image": "busybox"}},
                    "InputSources": [
                        {"Source": s, "Target": f"/in{i}"} for i, s in enumerate(sources)
                    ],
                }
            ],
        }
    )
    normalise_job(job)
    validate_job(job)
    return job


IPFS: dict[str, object] = {"Type": "ipfs", "Params": {"CID": CID}}
S3: dict[str, object] = {"Type": "s3", "Params": {"Bucket": "b", "Key": "k"}}
URL: dict[str, object] = {"Type": "urlDownload", "Params": {"URL": "https://example.com/x"}}


def test_only_nodes_offering_every_input_source_type_are_suitable() -> None:
    nodes = [
        _node("n-all", ["ipfs", "urlDownload", "s3"]),
        _node("n-ipfs", ["ipfs"]),
        _node("n-url", ["urlDownload", "inline"]),
    ]
    ranks = {r.node.info.node_id: r for r in rank_nodes(_job(IPFS, S3), nodes, [])}
    assert ranks["n-all"].suitable
    assert not ranks["n-ipfs"].suitable
    assert ranks["n-ipfs"].reason == "does not support s3: its input sources are ipfs"
    assert not ranks["n-url"].suitable
    # Each node is refused for the first type it lacks, in the job's order.
    assert missing_input_source(_job(IPFS, S3), nodes[2]) == "ipfs"
    # Types compare regardless of case, as the compute node's own bid check does.
    assert missing_input_source(_job(URL), _node("n", ["urldownload"])) is None
    assert missing_input_source(_job(), nodes[1]) is None


def test_a_node_that_advertises_no_input_sources_is_not_asked_for_jobs_with_inputs() -> None:
    [rank] = rank_nodes(_job(S3), [_node("n-none", [])], [])
    assert not rank.suitable
    assert rank.reason == "does not support s3: it has no input sources"
    [rank] = rank_nodes(_job(), [_node("n-none", [])], [])
    assert rank.suitable


def test_the_waiting_reason_counts_nodes_by_the_missing_input_source() -> None:
    nodes = [_node("a", ["ipfs"]), _node("b", ["ipfs"]), _node("c", ["s3", "inline"])]
    job = _job(S3, URL)
    ranks = rank_nodes(job, nodes, [], rng=random.Random(1))
    assert not any(r.suitable for r in ranks)
    assert waiting_reason(job, ranks) == (
        "waiting for a node: 2 nodes lack input source s3; 1 node lacks input source urlDownload"
    )
