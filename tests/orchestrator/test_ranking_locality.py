"""Data locality in ranking: a job whose ipfs input a node holds goes to that node, even
when another node has more room; more data held outweighs less."""

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
from bacalhau.orchestrator._ranking import rank_nodes

CAPACITY = Resources(cpu=4.0, memory=8 * 10**9, disk=10**11)
BIG = "QmXe7gvqFfynvyYqMwq6Xi7U2AYBtB8WSUS812vJTtPYwD"
SMALL = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _node(nid: str, free_cpu: float, held: dict[str, int]) -> NodeState:
    return NodeState(
        info=NodeInfo(
            node_id=nid,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=["docker"],
                publishers=["local"],
                max_capacity=CAPACITY,
                available_capacity=Resources(
                    cpu=free_cpu, memory=CAPACITY.memory, disk=CAPACITY.disk
                ),
                max_job_requirements=CAPACITY,
                held_roots=held,
            ),
        )
    )


def _job(*cids: str) -> Job:
    job = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "docker", "Params": {"Image": "busybox"}},
                    "InputSources": [
                        {"Source": {"Type": "ipfs", "Params": {"CID": c}}, "Target": f"/in{i}"}
                        for i, c in enumerate(cids)
                    ],
                }
            ],
        }
    )
    normalise_job(job)
    validate_job(job)
    return job


def _first(job: Job, nodes: list[NodeState]) -> str:
    return rank_nodes(job, nodes, [], rng=random.Random(1))[0].node.info.node_id


def test_the_node_holding_the_input_wins_over_an_idle_node() -> None:
    holder = _node("holder", free_cpu=0.5, held={BIG: 10 * 2**20})
    idle = _node("idle", free_cpu=4.0, held={})
    assert _first(_job(f"{BIG}/outputs"), [idle, holder]) == "holder"
    assert _first(_job(f"ipfs://{BIG}"), [idle, holder]) == "holder"
    # Without inputs the idle node is first: locality is what moved the job.
    assert _first(_job(), [idle, holder]) == "idle"


def test_more_data_held_outweighs_less() -> None:
    big = _node("big", free_cpu=1.0, held={BIG: 2**30})
    small = _node("small", free_cpu=1.0, held={SMALL: 2**10})
    assert _first(_job(SMALL, BIG), [small, big]) == "big"
