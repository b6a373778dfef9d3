"""Domain records survive model -> protobuf -> bytes -> protobuf -> model unchanged."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bacalhau import _wall_steps
from bacalhau._proto.v1 import compute_pb2, orchestrator_pb2, types_pb2
from bacalhau._wall_steps import WallSteps
from bacalhau.errors import InvalidJobSpec, InvalidRequest
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Execution,
    ExecutionDesiredStateType,
    ExecutionReport,
    ExecutionStateType,
    Job,
    JobStateType,
    NetworkConfig,
    NetworkType,
    PortMapping,
    RunResult,
    SpecConfig,
)
from bacalhau.transport import _convert as c
from bacalhau.transport import _convert_messages as m
from tests.transport.samples import (
    full_event,
    full_execution,
    full_job,
    full_task,
)

NODE = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def _job_trip(job: Job) -> Job:
    wire = c.job_to_proto(job).SerializeToString()
    return c.job_from_proto(types_pb2.Job.FromString(wire))


def _execution_trip(ex: Execution) -> Execution:
    wire = c.execution_to_proto(ex).SerializeToString()
    return c.execution_from_proto(types_pb2.Execution.FromString(wire))


def test_fully_populated_job_round_trips() -> None:
    job = full_job()
    back = _job_trip(job)
    assert back == job
    # Types survive too, not just equality (1 == 1.0 == True in Python).
    params = back.tasks[0].engine.params
    assert type(params["Count"]) is int
    assert type(params["Ratio"]) is float
    assert type(params["Flag"]) is bool
    assert params["Nested"]["Deep"]["List"] == [1, 2.5, True, None, {"x": "y"}]
    assert [type(v) for v in params["Nested"]["Deep"]["List"][:3]] == [int, float, bool]


def test_empty_job_round_trips() -> None:
    assert _job_trip(Job()) == Job()


def test_fully_populated_execution_round_trips() -> None:
    ex = full_execution()
    assert _execution_trip(ex) == ex


def test_execution_without_optional_parts_round_trips() -> None:
    ex = dataclasses.replace(full_execution(), job=None, published_result=None, run_output=None)
    back = _execution_trip(ex)
    assert back == ex
    assert back.job is None and back.published_result is None and back.run_output is None


def test_empty_publisher_and_params_stay_empty() -> None:
    task = dataclasses.replace(full_task(), publisher=SpecConfig())
    job = dataclasses.replace(full_job(), tasks=[task])
    back = _job_trip(job)
    assert back.tasks[0].publisher == SpecConfig()
    assert back.tasks[0].publisher.params == {}


@pytest.mark.parametrize("state", list(JobStateType))
def test_every_job_state_round_trips(state: JobStateType) -> None:
    assert _job_trip(Job(state=state)).state is state


@pytest.mark.parametrize("state", list(ExecutionStateType))
def test_every_execution_state_round_trips(state: ExecutionStateType) -> None:
    ex = dataclasses.replace(full_execution(), compute_state=state)
    assert _execution_trip(ex).compute_state is state


@pytest.mark.parametrize("desired", list(ExecutionDesiredStateType))
def test_every_desired_state_round_trips(desired: ExecutionDesiredStateType) -> None:
    ex = dataclasses.replace(full_execution(), desired_state=desired)
    assert _execution_trip(ex).desired_state is desired


@pytest.mark.parametrize("network", list(NetworkType))
def test_every_network_type_round_trips(network: NetworkType) -> None:
    task = full_task()
    task.network.type = network
    job = dataclasses.replace(full_job(), tasks=[task])
    assert _job_trip(job).tasks[0].network.type is network


@pytest.mark.parametrize("network", [NetworkType.BRIDGE, NetworkType.HOST])
def test_port_mappings_round_trip(network: NetworkType) -> None:
    task = full_task()
    task.network = NetworkConfig(
        type=network,
        ports=[
            PortMapping(name="http"),
            PortMapping(name="admin", static=30123, target=6060, host_network="127.0.0.1"),
            PortMapping(name="v6", static=65535, target=1, host_network="::1"),
        ],
    )
    job = dataclasses.replace(full_job(), tasks=[task])
    assert _job_trip(job).tasks[0].network == task.network
    # A peer that predates ports sends none: the field is new (3) and reads as empty.
    msg = c.job_to_proto(job)
    del msg.tasks[0].network.ports[:]
    assert c.job_from_proto(msg).tasks[0].network.ports == []


def test_unknown_enum_values_from_a_newer_peer_are_refused() -> None:
    msg = c.execution_to_proto(full_execution())
    msg.compute_state = 99  # type: ignore[assignment]
    with pytest.raises(InvalidRequest, match="unknown execution state 99"):
        c.execution_from_proto(msg)
    job = c.job_to_proto(full_job())
    job.state = 42  # type: ignore[assignment]
    with pytest.raises(InvalidRequest, match="unknown job state 42"):
        c.job_from_proto(job)


def test_non_json_params_are_refused_with_the_field() -> None:
    task = full_task()
    task.engine.params = {"Blob": b"\x00\x01"}
    with pytest.raises(InvalidJobSpec) as err:
        c.job_to_proto(dataclasses.replace(full_job(), tasks=[task]))
    assert err.value.field == "Tasks[0].Engine.Params"


def test_messages_round_trip() -> None:
    ids = {"requester_node_id": "requester", "compute_node_id": NODE}
    ask = AskForBidRequest(execution=full_execution(), wait_for_approval=False)
    ask_wire = m.ask_for_bid_to_proto(ask, **ids).SerializeToString()
    ask_msg = compute_pb2.BidAsk.FromString(ask_wire)
    assert (ask_msg.requester_node_id, ask_msg.compute_node_id) == ("requester", NODE)
    received = m.ask_for_bid_from_proto(ask_msg)
    # Measured on receipt: here, the moments between the two conversions on one clock.
    assert 0 <= received.clock_offset_ns < 1_000_000_000
    assert dataclasses.replace(received, clock_offset_ns=0) == ask


def test_an_ask_carries_the_senders_clock_and_the_receiver_measures_the_offset() -> None:
    ids = {"requester_node_id": "requester", "compute_node_id": NODE}
    ask = AskForBidRequest(execution=full_execution(), wait_for_approval=False)
    msg = m.ask_for_bid_to_proto(ask, **ids)
    assert abs(msg.sent_unix_nano - time.time_ns()) < 1_000_000_000
    hour = 3600 * 1_000_000_000
    msg.sent_unix_nano -= 2 * hour  # a requester two hours behind this node
    offset = m.ask_for_bid_from_proto(msg).clock_offset_ns
    assert 2 * hour <= offset < 2 * hour + 1_000_000_000
    msg.sent_unix_nano = 0  # a requester that does not say: the clocks are taken to agree
    assert m.ask_for_bid_from_proto(msg).clock_offset_ns == 0

    accept = BidDecision(execution_id="e-1", accepted=True, justification="approved")
    reject = BidDecision(execution_id="e-1", accepted=False, justification="too late")
    assert m.bid_decision_from_proto(m.bid_accepted_to_proto(accept, **ids)) == accept
    assert m.bid_decision_from_proto(m.bid_rejected_to_proto(reject, **ids)) == reject

    cancel = CancelExecutionRequest(execution_id="e-1", justification="user stop")
    assert m.cancel_from_proto(m.cancel_to_proto(cancel, **ids)) == cancel

    bid = BidResult(
        execution_id="e-1", job_id="j-1", node_id=NODE, accepted=True, event=full_event()
    )
    assert (
        m.bid_result_from_proto(
            orchestrator_pb2.BidResult.FromString(m.bid_result_to_proto(bid).SerializeToString())
        )
        == bid
    )

    run = RunResult(
        execution_id="e-1",
        job_id="j-1",
        node_id=NODE,
        published_result=SpecConfig(type="s3", params={"Bucket": "b", "Key": "k/"}),
        run_output=full_execution().run_output,  # type: ignore[arg-type]
        record_version=1_796_000_000_000_000_001,
    )
    assert (
        m.run_result_from_proto(
            orchestrator_pb2.RunResult.FromString(m.run_result_to_proto(run).SerializeToString())
        )
        == run
    )

    failure = ComputeFailure(
        execution_id="e-1", job_id="j-1", node_id=NODE, event=full_event(), record_version=3
    )
    assert m.compute_failure_from_proto(m.compute_failure_to_proto(failure)) == failure

    report = ExecutionReport(node_id=NODE, execution_ids=["e-1", "e-2"])
    wire = m.execution_report_to_proto(report).SerializeToString()
    assert (
        m.execution_report_from_proto(orchestrator_pb2.ExecutionReport.FromString(wire)) == report
    )


def test_a_requesters_clock_step_is_not_sent_as_time_the_job_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The requester's wall clock stepped 10 minutes forward after the job was created: the
    ask says "now" on the clock that stamped the job, so the node does not see it 10 minutes
    older."""
    second = 1_000_000_000
    steps = WallSteps()
    monkeypatch.setattr(_wall_steps, "_STEPS", steps)
    # The last look before the step: the wall clock read 600 s less than it does now.
    before_step = time.time_ns() - 600 * second
    steps.look(before_step, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    execution = full_execution()
    assert execution.job is not None
    execution.job.create_time = before_step - 5 * second
    ids = {"requester_node_id": "requester", "compute_node_id": NODE}
    sent = m.ask_for_bid_to_proto(AskForBidRequest(execution, False), **ids).sent_unix_nano
    assert abs(sent - (execution.job.create_time + 5 * second)) < second  # 5 s, not 605 s
