"""Spreading: consecutive jobs go to equal nodes in turn, although the nodes' records (by
gossip, late) do not show what was just placed on them."""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path

from bacalhau.models import (
    ComputeNodeInfo,
    Evaluation,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    normalise_job,
    now_ns,
    validate_job,
)
from bacalhau.orchestrator import JobStore, schedule
from bacalhau.orchestrator._ranking import Placed, headroom, with_placed

E = ExecutionStateType
NOW = 1_700_000_000_000_000_000
CAPACITY = Resources(cpu=2.0, memory=4 * 10**9, disk=10**11)


def _node(nid: str, free_cpu: float, running: int, free_memory: int = 0) -> NodeState:
    """A node as its last record showed it: same size, some of it in use."""
    return NodeState(
        info=NodeInfo(
            node_id=nid,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=["wasm"],
                publishers=["local", "noop"],
                max_capacity=CAPACITY,
                available_capacity=Resources(
                    cpu=free_cpu, memory=free_memory or CAPACITY.memory, disk=CAPACITY.disk
                ),
                max_job_requirements=CAPACITY,
                running_executions=running,
            ),
        )
    )


def _job(i: int) -> Job:
    j = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "wasm", "Params": {"EntryModule": {"Source": {}}}},
                    "Resources": {"CPU": "100m", "Memory": "64Mb"},
                }
            ],
        }
    )
    normalise_job(j)
    validate_job(j)
    j.id, j.state, j.create_time = f"j-{i}", JobStateType.PENDING, NOW
    return j


def _place(
    nodes: list[NodeState], jobs: int, in_flight: int, *, count_placed: bool
) -> dict[str, int]:
    """Schedule ``jobs`` jobs one after another; each ends once ``in_flight`` newer ones
    are placed, or when a job finds both nodes full (it waits for the oldest to end). The
    nodes' records never change meanwhile (they arrive late). Returns the placements per
    node."""
    rng = random.Random(7)
    placed: dict[str, dict[str, Resources]] = {n.info.node_id: {} for n in nodes}
    running: deque[tuple[str, str]] = deque()
    totals = dict.fromkeys(placed, 0)
    for i in range(jobs):
        ev = Evaluation(
            id=f"ev-{i}", job_id=f"j-{i}", namespace="default", type="batch", triggered_by="x"
        )
        ledger = {
            nid: Placed(
                count=len(held),
                allocated=Resources(
                    cpu=sum(r.cpu for r in held.values()),
                    memory=sum(r.memory for r in held.values()),
                ),
            )
            for nid, held in placed.items()
        }
        seen = with_placed(nodes, ledger) if count_placed else nodes
        plan = schedule(_job(i), [], seen, ev, now=NOW, rng=rng)
        if not plan.new_executions:  # every node is full: the job waits for an end
            assert count_placed and running, f"job {i} found no node with nothing running"
            nid, eid = running.popleft()
            del placed[nid][eid]
            ledger[nid] = Placed(
                count=len(placed[nid]),
                allocated=Resources(
                    cpu=sum(r.cpu for r in placed[nid].values()),
                    memory=sum(r.memory for r in placed[nid].values()),
                ),
            )
            plan = schedule(_job(i), [], with_placed(nodes, ledger), ev, now=NOW, rng=rng)
        (ex,) = plan.new_executions
        placed[ex.node_id][ex.id] = ex.allocated
        totals[ex.node_id] += 1
        running.append((ex.node_id, ex.id))
        if len(running) > in_flight:
            nid, eid = running.popleft()
            del placed[nid][eid]
    return totals


def _imbalance(totals: dict[str, int]) -> float:
    return max(totals.values()) / max(1, min(totals.values()))


def test_equal_nodes_with_stale_records_share_400_jobs() -> None:
    # One node's last record showed it busy, the other's idle; neither record changes
    # while 400 jobs are placed, 16 at a time in flight.
    nodes = [_node("a", free_cpu=2.0, running=0), _node("b", free_cpu=1.0, running=4)]
    totals = _place(nodes, 400, 16, count_placed=True)
    assert sum(totals.values()) == 400
    assert _imbalance(totals) <= 1.5, totals
    # Ranked on the records alone, the idle-looking node takes (nearly) everything.
    assert _imbalance(_place(nodes, 400, 16, count_placed=False)) > 1.5


def test_equal_idle_nodes_take_jobs_in_turn() -> None:
    nodes = [_node("a", free_cpu=2.0, running=0), _node("b", free_cpu=2.0, running=0)]
    for in_flight in (1, 4, 64):
        totals = _place(nodes, 400, in_flight, count_placed=True)
        assert _imbalance(totals) <= 1.5, (in_flight, totals)


def test_nearly_equal_idle_nodes_share_jobs_one_after_another() -> None:
    # Equal nodes on one host report slightly different free memory (as they do), and a tie
    # went to the lower node ID: neither may win most of the jobs placed one at a time.
    for a, b in (("a", "b"), ("b", "a")):
        nodes = [
            _node(a, free_cpu=2.0, running=0),
            _node(b, free_cpu=2.0, running=0, free_memory=CAPACITY.memory - 30 * 10**6),
        ]
        # Each job ends before the next is placed: no load tells the nodes apart.
        totals = _place(nodes, 400, 0, count_placed=True)
        assert _imbalance(totals) <= 1.25, (a, totals)


def _execution(eid: str, node_id: str) -> Execution:
    return Execution(
        id=eid,
        job_id="j-1",
        node_id=node_id,
        namespace="default",
        allocated=Resources(cpu=0.5, memory=10**8),
        desired_state=ExecutionDesiredStateType.PENDING,
        compute_state=E.NEW,
        create_time=now_ns(),
    )


def test_store_counts_what_runs_where_as_writes_commit(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create_execution(_execution("e-1", "a"))
    store.create_execution(_execution("e-2", "a"))
    store.create_execution(_execution("e-3", "b"))
    try:
        with store.transaction():
            store.create_execution(_execution("e-4", "b"))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    placed = store.placed()
    assert placed["a"].count == 2 and placed["a"].allocated.cpu == 1.0
    assert placed["b"].count == 1
    store.update_execution("e-3", compute_state=E.ASK_FOR_BID)
    store.update_execution("e-3", compute_state=E.FAILED)
    assert "b" not in store.placed()
    store.close()
    # A restarted requester counts what still runs from the database.
    store = JobStore(tmp_path / "jobs.db")
    assert store.placed()["a"].count == 2
    store.close()


def test_what_is_placed_beyond_the_free_room_counts_as_queued() -> None:
    # A late record shows the node idle; this requester has placed 3.5 CPUs of work on its
    # 2 CPUs since: 2 run, 1.5 wait in its queue. With over-subscription (1.5x) it takes
    # 1 CPU beyond its total, so it is full: it must not look as if it had room (it once
    # took every job while the other node sat idle).
    (node,) = with_placed(
        [_node("a", free_cpu=2.0, running=0)],
        {"a": Placed(count=35, allocated=Resources(cpu=3.5, memory=35 * 64 * 10**6))},
    )
    compute = node.info.compute
    assert compute is not None
    assert compute.available_capacity.cpu == 0
    assert compute.queue_capacity.cpu == 1.5
    room = headroom(node)
    assert room is not None and room.cpu == -0.5
    ev = Evaluation(id="ev-1", job_id="j-1", namespace="default", type="batch", triggered_by="x")
    plan = schedule(_job(1), [], [node], ev, now=NOW, rng=random.Random(1))
    assert not plan.new_executions
    # A record that already shows the work (running and queued) is left as it is.
    shown = _node("a", free_cpu=0.0, running=20)
    assert shown.info.compute is not None
    shown.info.compute.queue_capacity = Resources(cpu=1.5)
    (same,) = with_placed([shown], {"a": Placed(count=35, allocated=Resources(cpu=3.5))})
    assert same.info.compute is not None
    assert same.info.compute.queue_capacity.cpu == 1.5
    assert same.info.compute.available_capacity.cpu == 0
