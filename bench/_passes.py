"""What one scheduling pass costs the requester, by cluster size (``--only passes``).

The requester's own node directory (``NodeDirectory``, the states the scheduler sees, built
from a node view of ``size`` compute nodes) and the batch scheduler, in this process: no
devstack, no network, nothing but the pass. Two passes of one job, as every short job makes
them: the placement at its submit, and the pass that follows its execution's end and
completes it.

Each is measured the way the requester makes it (the nodes in a ``NodeListing``: listed only
when the pass places something) and next to its baseline, the same pass given the whole list
built first (what every pass did before: a node state for every node of the cluster, for a
pass that looks at one). Medians of ``runs`` passes, in microseconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bacalhau.models import (
    ComputeNodeInfo,
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    LivenessState,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    normalise_job,
    validate_job,
)
from bacalhau.orchestrator import NodeSighting, schedule
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._node_listing import NodeListing
from bacalhau.orchestrator._nodes import NodeDirectory

SIZES = (2, 100, 1000)


class _View:
    """A fixed cluster: every node alive, none changing."""

    def __init__(self, size: int) -> None:
        cap = Resources(cpu=8, memory=32 * 10**9, disk=10**12)
        self._nodes = {
            f"n{i:04d}": NodeSighting(
                info=NodeInfo(
                    node_id=f"n{i:04d}",
                    node_type=NodeType.COMPUTE,
                    compute=ComputeNodeInfo(
                        execution_engines=["wasm", "docker"],
                        publishers=["local"],
                        max_capacity=cap,
                        available_capacity=cap,
                        max_job_requirements=cap,
                    ),
                ),
                roles=frozenset({NodeType.COMPUTE}),
                liveness=LivenessState.ALIVE,
                version=1,
                last_seen_ns=time.time_ns(),
            )
            for i in range(size)
        }

    def get(self, node_id: str) -> NodeSighting | None:
        return self._nodes.get(node_id)

    def all_nodes(self) -> list[NodeSighting]:
        return list(self._nodes.values())

    def compute_nodes(self) -> list[NodeSighting]:
        return list(self._nodes.values())

    def subscribe(self, observer: object) -> Callable[[], None]:
        return lambda: None


class _Book:
    def register_node(self, node_id: str, address: str) -> None:
        pass


def _job() -> Job:
    job = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "wasm", "Params": {"EntryModule": {"Source": {}}}},
                    "Resources": {"CPU": "100m"},
                }
            ],
        }
    )
    normalise_job(job)
    validate_job(job)
    job.id, job.state, job.create_time = "j-1", JobStateType.RUNNING, time.time_ns()
    return job


def _median_us(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e6, 1)


def _figures(directory: NodeDirectory, runs: int) -> dict[str, float]:
    job = _job()
    ev = Evaluation(id="ev", job_id=job.id, namespace="default", type="batch", triggered_by="x")
    now = time.time_ns()
    done = Execution(
        id="e-1",
        job_id=job.id,
        node_id="n0001" if directory.compute_node("n0001") else "n0000",
        compute_state=ExecutionStateType.COMPLETED,
        desired_state=ExecutionDesiredStateType.RUNNING,
        create_time=now,
    )

    def listing() -> NodeListing:
        return NodeListing(directory.compute_nodes, directory.compute_node)

    def listed() -> list[NodeState]:
        return directory.compute_nodes()

    return {
        "completion_pass_us": _median_us(
            lambda: schedule(job, [done], listing(), ev, now=now), runs
        ),
        "completion_pass_listing_all_us": _median_us(
            lambda: schedule(job, [done], listed(), ev, now=now), runs
        ),
        "placement_pass_us": _median_us(lambda: schedule(job, [], listing(), ev, now=now), runs),
    }


def pass_figures(runs: int) -> dict[str, Any]:
    """The passes' figures for each cluster size in :data:`SIZES`. Call it where no event
    loop runs (a worker thread): the directory keeps a listing for a loop's turn."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            directory = NodeDirectory(
                self_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
                view=_View(size),
                approvals=ApprovalStore(Path(tmp) / f"nodes-{size}.db"),
                address_book=_Book(),
            )
            # Outside a running loop: every pass builds what it lists anew, as each pass of
            # the requester does in its own turn of the loop.
            out[str(size)] = _figures(directory, max(runs, 200 if size < 1000 else 50))
    return {"scheduling_pass_by_cluster_size": out}
