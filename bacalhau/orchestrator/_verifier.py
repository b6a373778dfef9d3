"""The verifier: compares the results of a verified job's replicas and decides which to accept.

Pure: a function of the job's replica count and its completed executions. Every replica of a
verified job ran the same work (same inputs, same environment, deterministic), so correct
replicas published the same results directory, hence the same CID (each compute node signs
the ``RunResult`` that carries it; the transport refuses one signed by another node). The
results held by a strict majority of the job's ``Count`` are accepted; every other completed
replica disagrees. A replica whose published result names no CID cannot be compared, which
counts as a disagreement. Without a majority nothing is accepted and the job fails.

A node's claim is checked against what it published before the verdict (``_result_check``,
which records its outcome in the execution's details): a replica whose published content has
another CID than the one it claims disagrees, and its claim counts for no CID.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bacalhau.models import Execution

__all__ = [
    "ACCEPTED",
    "CHECK_DETAIL",
    "CHECK_NOTE_DETAIL",
    "MATCHED",
    "MISMATCH",
    "NO_CID",
    "PENDING",
    "PUBLISHED_CID_DETAIL",
    "REJECTED",
    "UNCHECKED",
    "UNDECIDED",
    "CheckStatus",
    "ReplicaVerdict",
    "VerificationOutcome",
    "check_pending",
    "results_cid",
    "verify_replicas",
]

Verdict = Literal["accepted", "rejected", "undecided"]
#: Values of the ``Verification`` detail an execution gets ("undecided": no majority).
ACCEPTED: Verdict = "accepted"
REJECTED: Verdict = "rejected"
UNDECIDED: Verdict = "undecided"
#: What a replica without a CID is shown as (never a CID: CIDs have no spaces).
NO_CID = "(no CID)"
#: What a replica whose published results do not match its claim is counted as.
FALSE_CLAIM = "(results not as claimed)"

CheckStatus = Literal["matched", "mismatch", "unchecked"]
#: Outcomes of the check of a replica's published results against its claimed CID.
MATCHED: CheckStatus = "matched"
MISMATCH: CheckStatus = "mismatch"
UNCHECKED: CheckStatus = "unchecked"
#: Set with the replica's RunResult while its published results are being checked.
PENDING = "pending"
#: Execution details the check writes: its outcome, the CID of what was published, why.
CHECK_DETAIL = "ResultCheck"
PUBLISHED_CID_DETAIL = "PublishedCID"
CHECK_NOTE_DETAIL = "ResultCheckNote"


def check_pending(ex: Execution) -> bool:
    """Whether the replica's published results are still being checked."""
    return ex.compute_details.get(CHECK_DETAIL) == PENDING


def _false_claim(ex: Execution) -> bool:
    return ex.compute_details.get(CHECK_DETAIL) == MISMATCH


def results_cid(ex: Execution) -> str:
    """The CID of an execution's published results directory, or "" when it has none."""
    result = ex.published_result
    if result is None:
        return ""
    cid = result.params.get("CID")
    return cid.strip() if isinstance(cid, str) else ""


@dataclass(frozen=True, slots=True)
class ReplicaVerdict:
    """What the verifier decided about one completed replica."""

    execution_id: str
    node_id: str
    #: Its results' CID ("" when its published result named none).
    cid: str
    verdict: Verdict
    #: Set when its published results are not what it claimed: what they are (their CID,
    #: or why they are not results at all).
    published: str = ""

    def message(self, accepted_cid: str) -> str:
        """The failure message of a rejected replica."""
        if self.published:
            return (
                f"failed verification: its node claims results {self.cid or NO_CID} but "
                f"published {self.published} (the accepted results are {accepted_cid})"
            )
        if not self.cid:
            return (
                f"failed verification: its published results carry no CID to compare with "
                f"the accepted {accepted_cid}"
            )
        return f"failed verification: results {self.cid} disagree with the accepted {accepted_cid}"


@dataclass(frozen=True, slots=True)
class VerificationOutcome:
    """The verifier's decision on a verified job whose replicas have all finished."""

    #: Replicas the job asked for (its ``Count``); a majority is more than half of it.
    replicas: int
    #: The accepted results' CID, or "" when no results have a majority.
    accepted_cid: str
    verdicts: tuple[ReplicaVerdict, ...]
    #: How many completed replicas hold each CID (``NO_CID`` for those without).
    counts: tuple[tuple[str, int], ...]
    #: Replicas that never completed (failed after their retries, or never placed).
    missing: int

    @property
    def accepted(self) -> bool:
        return bool(self.accepted_cid)

    @property
    def needed(self) -> int:
        """Agreeing replicas a majority takes."""
        return self.replicas // 2 + 1

    def agreements(self) -> dict[str, bool]:
        """Per node, whether it agreed with the accepted results (empty without a majority:
        then nobody can tell which node was right)."""
        if not self.accepted:
            return {}
        return {v.node_id: v.verdict == ACCEPTED for v in self.verdicts}

    def tally(self) -> str:
        """The CIDs and how many replicas hold each, most first: ``bafy... x2, bafz... x1``."""
        parts = [f"{cid} x{n}" for cid, n in self.counts]
        if self.missing:
            parts.append(f"{self.missing} replica(s) without results")
        return ", ".join(parts) or "no results"

    def summary(self) -> str:
        """One line for the job's state message and history."""
        if self.accepted:
            agreed = sum(1 for v in self.verdicts if v.verdict == ACCEPTED)
            rejected = sum(1 for v in self.verdicts if v.verdict == REJECTED)
            text = (
                f"Verification accepted results {self.accepted_cid}: {agreed} of "
                f"{self.replicas} replicas agree"
            )
            return text + (f", {rejected} rejected" if rejected else "")
        return (
            f"Verification failed: no results were agreed on by a majority of the "
            f"{self.replicas} replicas ({self.needed} needed); results: {self.tally()}"
        )


def _verdict(cid: str, accepted: str) -> Verdict:
    if not accepted:
        return UNDECIDED
    return ACCEPTED if cid == accepted else REJECTED


def _published(ex: Execution) -> str:
    """What a replica whose claim was belied really published, for its message."""
    details = ex.compute_details
    return details.get(PUBLISHED_CID_DETAIL) or (
        f"something else ({details.get(CHECK_NOTE_DETAIL) or 'unreadable'})"
    )


def verify_replicas(replicas: int, completed: Sequence[Execution]) -> VerificationOutcome:
    """Decide on the ``completed`` replicas of a verified job that asked for ``replicas``.

    The CID held by more than ``replicas // 2`` completed replicas is accepted; those
    replicas are accepted and every other completed one is rejected. Without such a CID
    every replica is "undecided" and nothing is accepted.
    """
    cids = {ex.id: results_cid(ex) for ex in completed}
    # A claim its published results belie counts for nothing: not even for the CID claimed.
    held = {ex.id: FALSE_CLAIM if _false_claim(ex) else cids[ex.id] or NO_CID for ex in completed}
    counts = Counter(held.values())
    needed = replicas // 2 + 1
    accepted = next(
        (cid for cid, n in counts.items() if cid not in (NO_CID, FALSE_CLAIM) and n >= needed), ""
    )
    verdicts = tuple(
        ReplicaVerdict(
            execution_id=ex.id,
            node_id=ex.node_id,
            cid=cids[ex.id],
            verdict=_verdict(held[ex.id], accepted),
            published=_published(ex) if _false_claim(ex) else "",
        )
        for ex in sorted(completed, key=lambda e: (e.create_time, e.id))
    )
    ordered = tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return VerificationOutcome(
        replicas=replicas,
        accepted_cid=accepted,
        verdicts=verdicts,
        counts=ordered,
        missing=max(0, replicas - len(completed)),
    )
