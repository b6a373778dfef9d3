"""When waiting for a long-running job ends: once it runs, or once it is queued waiting for a
node (it may wait as long as no node takes it). A service runs once every replica
has started, except those it says wait for a node (one per node, and no node left for them:
they may wait as long as the service runs, and ``--wait`` must not wait with them)."""

from __future__ import annotations

from bacalhau.client import JobDetails
from bacalhau.client._answers import is_started
from bacalhau.models import Execution, ExecutionStateType, Job, JobStateType

E = ExecutionStateType


def _service(
    count: int, message: str = "", state: JobStateType = JobStateType.RUNNING, kind: str = "service"
) -> Job:
    job = Job.from_dict({"Type": kind, "Count": count, "Tasks": [{"Name": "main"}]})
    job.state = state
    job.state_message = message
    return job


def _running(*nodes: str) -> list[Execution]:
    return [
        Execution(id=f"e-{n}", job_id="j", node_id=n, compute_state=E.BID_ACCEPTED) for n in nodes
    ]


def test_a_service_runs_once_every_replica_started() -> None:
    assert not is_started(JobDetails(_service(3), executions=_running("a", "b")))
    assert is_started(JobDetails(_service(3), executions=_running("a", "b", "c")))


def test_replicas_the_service_says_wait_for_a_node_are_not_waited_for() -> None:
    waiting = "1 of 3 replicas waiting for a node: 2 nodes already run one of its executions"
    assert is_started(JobDetails(_service(3, waiting), executions=_running("a", "b")))
    # Not before the others run.
    assert not is_started(JobDetails(_service(3, waiting), executions=_running("a")))
    # Nor while one is still being bid for.
    bidding = [
        *_running("a"),
        Execution(id="e-b", job_id="j", node_id="b", compute_state=E.ASK_FOR_BID),
    ]
    assert not is_started(JobDetails(_service(3, waiting), executions=bidding))


def test_a_job_queued_until_a_node_takes_it_is_not_waited_for() -> None:
    """Turned down everywhere (full nodes, an approval hook that says no): it may wait as long
    as that lasts, so waiting for it ends with it queued, saying why."""
    why = "waiting for a node: 2 nodes were turned down by an approval hook"
    for kind in ("daemon", "service"):
        queued = _service(1, why, JobStateType.QUEUED, kind)
        assert is_started(JobDetails(queued, executions=[]))
        # Not while a bid is out: the answer may place it.
        asking = [Execution(id="e-a", job_id="j", node_id="a", compute_state=E.ASK_FOR_BID)]
        assert not is_started(JobDetails(queued, executions=asking))
    # Queued for another reason (a moment before its first placement): waited for.
    assert not is_started(JobDetails(_service(1, "", JobStateType.QUEUED), executions=[]))
