"""A job larger than every node fails at once, with what it asked and the most on offer;
a job that only waits for capacity to free still waits."""

from __future__ import annotations

from bacalhau.models import JobStateType, NodeState, Resources
from bacalhau.orchestrator import schedule
from tests.orchestrator.test_scheduler import NOW, ev, job, node


def sized(
    nid: str, *, cpu: float, memory: int, gpu: int = 0, free_cpu: float | None = None
) -> NodeState:
    state = node(nid, cpu=cpu)
    compute = state.info.compute
    assert compute is not None
    compute.max_job_requirements = Resources(cpu=cpu, memory=memory, disk=10**11, gpu=gpu)
    compute.max_capacity = compute.max_job_requirements
    compute.available_capacity = Resources(
        cpu=cpu if free_cpu is None else free_cpu, memory=memory, disk=10**11, gpu=gpu
    )
    return state


def test_a_job_larger_than_every_node_fails_at_once_with_the_numbers() -> None:
    nodes = [sized("a", cpu=2, memory=4 * 10**9), sized("b", cpu=8, memory=2 * 10**9, gpu=1)]
    big = job(Resources={"CPU": "4", "Memory": "8Gb", "GPU": "2"})
    plan = schedule(big, [], nodes, ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.new_executions == []
    assert (
        "asked CPU 4, memory 8GB, disk 0B, GPU 2; "
        "the most any node offers: CPU 8, memory 4GB, disk 100GB, GPU 1"
    ) in plan.job_message


def test_a_job_one_node_can_take_is_placed_there_and_not_reported_too_big() -> None:
    nodes = [sized("a", cpu=2, memory=4 * 10**9), sized("b", cpu=8, memory=16 * 10**9)]
    plan = schedule(job(Resources={"CPU": "4"}), [], nodes, ev(), now=NOW)
    assert [e.node_id for e in plan.new_executions] == ["b"]


def test_a_job_that_fits_a_busy_node_waits_instead_of_failing() -> None:
    # Busy beyond what over-subscription allows, but the job fits the node once it is free.
    busy = sized("a", cpu=8, memory=16 * 10**9, free_cpu=0)
    plan = schedule(job(Resources={"CPU": "6"}), [], [busy], ev(), now=NOW)
    assert plan.new_job_state != JobStateType.FAILED
    assert plan.new_executions == []
    assert plan.new_evaluations  # looked at again once capacity may have freed
