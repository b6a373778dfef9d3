"""A node whose bid the requester's approval hooks turned down is asked again after a pause
that doubles with each refusal: a hook's "no" may be for now (a budget, a hook that timed
out), and must not strand a daemon, service or waiting batch job for good."""

from __future__ import annotations

from dataclasses import replace

from bacalhau.models import Execution, ExecutionStateType, Job
from bacalhau.orchestrator import schedule
from bacalhau.orchestrator._attempts import (
    RECONSIDER_AFTER_NS,
    RECONSIDER_MAX_NS,
    next_reconsideration,
    reconsider_at,
)
from bacalhau.orchestrator._ranking import REFUSED, TURNED_DOWN, rank_nodes
from tests.orchestrator.test_scheduler import NOW, ev, execution, job, node

E = ExecutionStateType
S = 1_000_000_000


def turned_down(eid: str, nid: str, at: int) -> Execution:
    refused = execution(eid, nid, E.BID_REJECTED, msg="bid rejected by approval hook budget: no")
    return replace(refused, modify_time=at)


def test_the_pause_doubles_with_each_refusal_up_to_a_cap() -> None:
    once = [turned_down("e1", "a", NOW)]
    assert reconsider_at(once) == NOW + RECONSIDER_AFTER_NS
    twice = [*once, turned_down("e2", "a", NOW + 20 * S)]
    assert reconsider_at(twice) == NOW + 20 * S + 2 * RECONSIDER_AFTER_NS
    many = [turned_down(f"e{i}", "a", NOW) for i in range(30)]
    assert reconsider_at(many) == NOW + RECONSIDER_MAX_NS
    assert reconsider_at([execution("e", "a", E.FAILED)]) == 0


def test_a_turned_down_node_is_unsuitable_then_asked_again() -> None:
    history = [turned_down("e1", "a", NOW)]
    [soon] = rank_nodes(job(), [node("a")], history, now=NOW + 5 * S)
    assert not soon.suitable and soon.obstacle == TURNED_DOWN
    assert soon.reason == (
        "was turned down by an approval hook: bid rejected by approval hook budget: no "
        "(asked again in 5s)"
    )
    [later] = rank_nodes(job(), [node("a")], history, now=NOW + RECONSIDER_AFTER_NS)
    assert later.suitable
    # A refusal is not an attempt: a batch node refused twice may still be asked.
    twice = [*history, turned_down("e2", "a", NOW + 20 * S)]
    [third] = rank_nodes(job(), [node("a")], twice, now=NOW + 60 * S, attempts_per_node=2)
    assert third.suitable


def _daemon() -> Job:
    daemon = job()
    daemon.type = "daemon"
    return daemon


def test_a_daemon_turned_down_everywhere_looks_again_when_the_pause_ends() -> None:
    history = [turned_down("e1", "a", NOW), turned_down("e2", "b", NOW + 3 * S)]
    assert next_reconsideration(history, NOW + S) == NOW + RECONSIDER_AFTER_NS
    plan = schedule(_daemon(), history, [node("a"), node("b")], ev(), now=NOW + S)
    assert plan.new_executions == []
    assert [e.wait_until for e in plan.new_evaluations] == [NOW + RECONSIDER_AFTER_NS]
    # Then: node a is asked again, node b's pause is not over yet.
    plan = schedule(_daemon(), history, [node("a"), node("b")], ev(), now=NOW + 11 * S)
    assert [e.node_id for e in plan.new_executions] == ["a"]
    assert [e.wait_until for e in plan.new_evaluations] == [NOW + 3 * S + RECONSIDER_AFTER_NS]


def test_a_batch_job_failing_on_a_refusal_does_not_promise_to_ask_again() -> None:
    # No QueueTimeout: the job fails now, naming the hook's reason, and nothing is asked
    # again, so its message must not say when.
    plan = schedule(job(), [turned_down("e1", "a", NOW)], [node("a")], ev(), now=NOW + S)
    assert plan.new_job_state is not None and plan.new_job_state.is_terminal()
    assert "bid rejected by approval hook budget: no" in plan.job_message
    assert "asked again" not in plan.job_message


def test_a_bid_the_requester_rejected_itself_is_not_blamed_on_a_hook() -> None:
    # Right after a restart the requester may not know the bidder yet: no hook was asked.
    refused = execution("e1", "a", E.BID_REJECTED, msg="bid rejected: node a is not known")
    [soon] = rank_nodes(job(), [node("a")], [replace(refused, modify_time=NOW)], now=NOW + S)
    assert not soon.suitable and soon.obstacle == REFUSED
    assert soon.reason == (
        "had its bid rejected by this requester: node a is not known (asked again in 9s)"
    )
