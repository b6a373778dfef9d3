"""How the check of published results weighs in the verdict, as pure functions: a replica
whose results are not as claimed disagrees (and its claim counts for no CID), one being
checked holds the verdict back, one left unchecked keeps its claim."""

from __future__ import annotations

from bacalhau.models import Execution, ExecutionStateType, JobStateType
from bacalhau.orchestrator import schedule
from bacalhau.orchestrator._verifier import verify_replicas
from tests.orchestrator.test_scheduler import NOW, ev, node
from tests.orchestrator.test_verification import BAD, GOOD, replica, verified

E = ExecutionStateType


def checked(ex: Execution, status: str, published: str = "", note: str = "") -> Execution:
    ex.compute_details = {"ResultCheck": status}
    if published:
        ex.compute_details["PublishedCID"] = published
    if note:
        ex.compute_details["ResultCheckNote"] = note
    return ex


def test_a_claim_its_published_results_belie_is_rejected_naming_both_cids() -> None:
    outcome = verify_replicas(
        3,
        [
            replica("e1", "a"),
            checked(replica("e2", "b"), "mismatch", published=BAD),
            replica("e3", "c"),
        ],
    )
    assert outcome.accepted_cid == GOOD
    assert outcome.agreements() == {"a": True, "b": False, "c": True}
    [liar] = [v for v in outcome.verdicts if v.verdict == "rejected"]
    assert liar.message(GOOD) == (
        f"failed verification: its node claims results {GOOD} but published {BAD} "
        f"(the accepted results are {GOOD})"
    )


def test_false_claims_make_no_majority() -> None:
    # Two of three claim GOOD, but one of them did not publish it: GOOD has one replica.
    outcome = verify_replicas(
        3,
        [
            replica("e1", "a"),
            checked(replica("e2", "b"), "mismatch", note="the archive does not unpack"),
            replica("e3", "c", cid=BAD),
        ],
    )
    assert not outcome.accepted
    assert "(results not as claimed) x1" in outcome.tally()


def test_unchecked_results_keep_their_claim() -> None:
    outcome = verify_replicas(
        2,
        [
            checked(replica("e1", "a"), "unchecked", note="larger than the limit"),
            checked(replica("e2", "b"), "matched", published=GOOD),
        ],
    )
    assert outcome.accepted_cid == GOOD and outcome.agreements() == {"a": True, "b": True}


def test_the_verdict_waits_for_results_being_checked() -> None:
    nodes = [node("a"), node("b")]
    pending = [replica("e1", "a"), checked(replica("e2", "b"), "pending")]
    plan = schedule(verified(2), pending, nodes, ev(), now=NOW)
    assert plan.new_job_state is None and not plan.reputation
    assert not plan.new_executions and not [c for c in plan.changes if c.compute_state]
    done = [replica("e1", "a"), checked(replica("e2", "b"), "matched", published=GOOD)]
    plan = schedule(verified(2), done, nodes, ev(), now=NOW)
    assert plan.new_job_state == JobStateType.COMPLETED
