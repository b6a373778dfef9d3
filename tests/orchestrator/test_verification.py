"""Verified jobs as pure functions: the verifier's verdicts, the scheduling of replicas, and
the reputation that the verdicts feed into ranking."""

from __future__ import annotations

import random
from pathlib import Path

from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeReputation,
    SpecConfig,
)
from bacalhau.orchestrator import SchedulerSettings, rank_nodes, schedule
from bacalhau.orchestrator._reputation import node_reputations, with_reputation
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._verifier import results_cid, verify_replicas
from tests.orchestrator.test_scheduler import NOW, ev, job, node

D = ExecutionDesiredStateType
E = ExecutionStateType

GOOD = "bafkreigoodgoodgoodgoodgoodgoodgoodgoodgoodgoodgoodgoodgood"
BAD = "bafkreibadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbad"
OTHER = "bafkreiotherotherotherotherotherotherotherotherotherother"


def verified(count: int = 3, engine: str = "wasm", **task: object) -> Job:
    j = job(count=count, engine=engine, **task)
    j.verification.mode = "majority"
    j.meta["bacalhau.org/verification"] = "majority"
    j.count = max(count, 2)
    return j


def replica(
    eid: str, nid: str, state: E = E.COMPLETED, cid: str | None = GOOD, *, t: int = NOW
) -> Execution:
    published = None
    if cid is not None:
        params = {"URL": f"http://{nid}/{eid}.tgz"} | ({"CID": cid} if cid else {})
        published = SpecConfig(type="urlDownload", params=params)
    return Execution(
        id=eid, job_id="j-1", node_id=nid, compute_state=state,
        desired_state=D.STOPPED if state.is_terminal() else D.RUNNING,
        published_result=published, create_time=t, modify_time=t,
    )  # fmt: skip


# -- the verifier ------------------------------------------------------------------------


def test_the_majority_cid_is_accepted_and_the_other_rejected() -> None:
    outcome = verify_replicas(
        3, [replica("e1", "a"), replica("e2", "b", cid=BAD), replica("e3", "c")]
    )
    assert outcome.accepted_cid == GOOD
    assert {v.execution_id: v.verdict for v in outcome.verdicts} == {
        "e1": "accepted", "e2": "rejected", "e3": "accepted",
    }  # fmt: skip
    assert outcome.agreements() == {"a": True, "b": False, "c": True}
    [bad] = [v for v in outcome.verdicts if v.verdict == "rejected"]
    assert bad.message(GOOD) == (
        f"failed verification: results {BAD} disagree with the accepted {GOOD}"
    )


def test_a_majority_is_of_the_job_count_not_of_the_replicas_that_completed() -> None:
    # Count 3, one replica failed: the two that completed disagree, so neither has 2 of 3.
    outcome = verify_replicas(3, [replica("e1", "a"), replica("e2", "b", cid=BAD)])
    assert not outcome.accepted and outcome.agreements() == {}
    assert outcome.needed == 2 and outcome.missing == 1
    assert f"{BAD} x1" in outcome.summary() and f"{GOOD} x1" in outcome.summary()
    assert "majority of the 3 replicas (2 needed)" in outcome.summary()
    # Two of three agree even though the third never completed: accepted.
    assert verify_replicas(3, [replica("e1", "a"), replica("e2", "b")]).accepted_cid == GOOD
    # Count 2 needs both: a tie is no majority.
    assert not verify_replicas(2, [replica("e1", "a"), replica("e2", "b", cid=BAD)]).accepted


def test_results_without_a_cid_count_as_a_disagreement() -> None:
    outcome = verify_replicas(
        3, [replica("e1", "a", cid=""), replica("e2", "b"), replica("e3", "c")]
    )
    assert (
        results_cid(replica("e1", "a", cid="")) == ""
        and results_cid(replica("e", "n", cid=None)) == ""
    )
    assert outcome.agreements() == {"a": False, "b": True, "c": True}
    [rejected] = [v for v in outcome.verdicts if v.verdict == "rejected"]
    assert "carry no CID" in rejected.message(GOOD)
    # Replicas without CIDs never form a majority of their own.
    empty = [replica(f"e{i}", n, cid="") for i, n in enumerate("abc")]
    assert not verify_replicas(3, empty).accepted


# -- scheduling replicas ----------------------------------------------------------------


def test_replicas_go_to_distinct_nodes_as_one_partition() -> None:
    plan = schedule(verified(3), [], [node("a"), node("b"), node("c"), node("d")], ev(), now=NOW)
    assert len(plan.new_executions) == 3
    assert len({e.node_id for e in plan.new_executions}) == 3
    assert {e.partition_index for e in plan.new_executions} == {0}


def test_a_failed_replica_is_retried_on_a_node_without_one() -> None:
    executions = [
        replica("e1", "a"),
        replica("e2", "b", E.FAILED, cid=None),
        replica("e3", "c", E.RUNNING, cid=None),
    ]
    plan = schedule(
        verified(3), executions, [node("a"), node("b"), node("c"), node("d")], ev(), now=NOW,
        settings=SchedulerSettings(retry_delay=0, max_attempts_per_node=1),
    )  # fmt: skip
    assert [e.node_id for e in plan.new_executions] == ["d"]
    assert plan.new_job_state == JobStateType.RUNNING  # a replica runs: not finished yet


def test_too_few_nodes_fail_the_job_saying_how_many() -> None:
    plan = schedule(verified(3), [], [node("a"), node("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert "runs its 3 replicas on distinct nodes: it needs 1 more node(s)" in plan.job_message


def test_nothing_is_verified_while_a_replica_runs() -> None:
    executions = [replica("e1", "a"), replica("e2", "b"), replica("e3", "c", E.RUNNING, None)]
    plan = schedule(verified(3), executions, [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.RUNNING and not plan.reputation
    assert not [c for c in plan.changes if c.compute_state is not None]


def test_finished_replicas_are_verified_and_the_job_completes() -> None:
    executions = [replica("e1", "a"), replica("e2", "b", cid=BAD), replica("e3", "c")]
    plan = schedule(verified(3), executions, [node("a"), node("b"), node("c")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.COMPLETED
    assert plan.job_message == (
        f"Verification accepted results {GOOD}: 2 of 3 replicas agree, 1 rejected"
    )
    changes = {c.execution_id: c for c in plan.changes}
    assert changes["e2"].compute_state == E.FAILED
    assert changes["e2"].compute_message == (
        f"failed verification: results {BAD} disagree with the accepted {GOOD}"
    )
    assert changes["e2"].compute_details["Verification"] == "rejected"
    assert changes["e2"].compute_details["ErrorCode"] == "VerificationFailed"
    for accepted in ("e1", "e3"):
        assert changes[accepted].compute_state is None
        assert changes[accepted].compute_details["Verification"] == "accepted"
    assert plan.reputation == {"a": True, "b": False, "c": True}
    assert plan.job_event is not None and plan.job_event.details["AcceptedCID"] == GOOD


def test_without_a_majority_the_job_fails_saying_so() -> None:
    executions = [replica("e1", "a"), replica("e2", "b", cid=BAD)]
    plan = schedule(verified(2), executions, [node("a"), node("b")], ev(), now=NOW)
    assert plan.new_job_state == JobStateType.FAILED
    assert plan.job_message.startswith("Verification failed: no results were agreed on")
    assert (
        plan.job_event is not None and plan.job_event.details["ErrorCode"] == "VerificationFailed"
    )
    assert not plan.reputation  # nobody can tell which node was right
    assert not [c for c in plan.changes if c.compute_state is not None]


def test_retries_used_up_verify_what_completed() -> None:
    executions = [
        replica("e1", "a"),
        replica("e2", "b"),
        replica("e3", "c", E.FAILED, None),
        replica("e4", "d", E.FAILED, None),
        replica("e5", "e", E.FAILED, None),
    ]
    nodes = [node(n) for n in "abcdef"]
    plan = schedule(verified(3), executions, nodes, ev(), now=NOW)
    assert not plan.new_executions
    assert plan.new_job_state == JobStateType.COMPLETED
    assert plan.reputation == {"a": True, "b": True}


def test_an_unverified_batch_job_still_runs_partitions() -> None:
    plan = schedule(job(count=2), [], [node("a"), node("b")], ev(), now=NOW)
    assert sorted(e.partition_index for e in plan.new_executions) == [0, 1]


# -- reputation --------------------------------------------------------------------------


def test_verdicts_are_counted_per_node_and_persist(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.record_verdicts({"a": True, "b": False})
    store.record_verdicts({"a": True, "b": True})
    store.close()
    reopened = JobStore(tmp_path / "jobs.db")
    try:
        assert node_reputations(reopened) == {
            "a": NodeReputation(agreements=2, disagreements=0),
            "b": NodeReputation(agreements=1, disagreements=1),
        }
    finally:
        reopened.close()


def test_a_rolled_back_plan_records_no_verdict(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    try:
        try:
            with store.transaction():
                store.record_verdicts({"a": False})
                raise RuntimeError("plan failed")
        except RuntimeError:
            pass
        assert node_reputations(store) == {}
    finally:
        store.close()


def test_the_score_is_laplace() -> None:
    assert NodeReputation().score == 0.5
    assert NodeReputation(agreements=3).score == 0.8
    assert NodeReputation(disagreements=1).score == 1 / 3


def test_a_node_caught_disagreeing_ranks_below_its_peers() -> None:
    nodes = with_reputation(
        [node("a"), node("b"), node("c")],
        {"a": NodeReputation(1, 0), "b": NodeReputation(0, 1), "c": NodeReputation(1, 0)},
    )
    for seed in range(20):
        ranks = rank_nodes(job(), nodes, [], rng=random.Random(seed))
        assert ranks[-1].node.info.node_id == "b"
        assert ranks[-1].suitable  # ranked down, not excluded: the threshold is off


def test_below_the_operators_threshold_a_node_gets_no_jobs() -> None:
    nodes = with_reputation([node("a"), node("b")], {"b": NodeReputation(0, 2)})
    ranks = {r.node.info.node_id: r for r in rank_nodes(job(), nodes, [], min_reputation=0.4)}
    assert ranks["a"].suitable  # no record: 0.5
    assert not ranks["b"].suitable
    assert ranks["b"].reason.startswith("has a reputation of 0.25, below the operator's minimum")
    plan = schedule(
        verified(2), [], nodes, ev(), now=NOW, settings=SchedulerSettings(min_reputation=0.4)
    )
    assert plan.new_job_state == JobStateType.FAILED
    assert "has a reputation of 0.25" in plan.job_message
