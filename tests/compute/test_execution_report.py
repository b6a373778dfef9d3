"""What a compute node reports to its requesters: the executions it still holds (under way,
or finished with the report not yet delivered), across the wire, so a restarted requester
(or one that declared the node dead) can reconcile."""

from __future__ import annotations

from pathlib import Path

from bacalhau._proto.v1 import orchestrator_pb2
from bacalhau.compute import ExecutionStore
from bacalhau.models import ComputeFailure, Event, ExecutionReport, LocalExecutionState
from bacalhau.transport import _convert_messages as convert
from tests.compute.jobs import make_execution

L = LocalExecutionState


def test_unsettled_executions_are_those_under_way_or_not_yet_reported(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        bidding = store.create(make_execution(), requester_id="r")
        running = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        running = store.transition(running, L.RUNNING)
        rejected = store.create(make_execution(), requester_id="r", state=L.BID_REJECTED)
        other = store.create(make_execution(), requester_id="r2", state=L.BID_ACCEPTED)
        # Finished, but its failure report is still waiting in the outbox.
        failed = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        failure = ComputeFailure(failed.id, failed.job_id, "n", Event(message="boom"))
        store.transition(failed, L.FAILED, callback=failure)
        assert set(store.unsettled_ids("r")) == {bidding.id, running.id, failed.id}
        assert set(store.unsettled_ids()) == {bidding.id, running.id, failed.id, other.id}
        # Once reported, a finished execution is settled.
        [entry] = store.pending_callbacks("r")
        store.delete_callback(entry.seq)
        assert set(store.unsettled_ids("r")) == {bidding.id, running.id}
        assert rejected.id not in store.unsettled_ids()


def test_the_report_survives_the_wire_empty_or_not() -> None:
    for executions in (["a", "b"], []):
        msg = convert.execution_report_to_proto(ExecutionReport("n", executions))
        decoded = convert.execution_report_from_proto(
            orchestrator_pb2.ExecutionReport.FromString(msg.SerializeToString())
        )
        assert decoded == ExecutionReport("n", executions)
