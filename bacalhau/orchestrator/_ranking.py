"""Node ranking: pure functions of (job, node, previous executions).

Each ranker returns a score; any negative score makes the node unsuitable and carries the
reason shown to the user. Scores of suitable nodes are summed; higher is better. The ranks
follow Bacalhau's (engines, publishers, labels, max usage, previous attempts, available
capacity, a small random term) so placement feels familiar.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bacalhau.models import (
    Connection,
    Execution,
    ExecutionStateType,
    Job,
    Membership,
    NodeState,
    NodeType,
    Resources,
    selector_matches,
)

UNSUITABLE = -1
PREFERRED = 10

#: What a job uses when it asks for nothing (Bacalhau's compute-side defaults).
DEFAULT_USAGE = Resources(cpu=0.1, memory=100 * 2**20)


@dataclass(frozen=True, slots=True)
class NodeRank:
    node: NodeState
    score: int
    reason: str = ""

    @property
    def suitable(self) -> bool:
        return self.score >= 0


def job_usage(job: Job) -> Resources:
    res = job.task.resources.parse()
    if not res.cpu and not res.memory and not res.disk and not res.gpu:
        return DEFAULT_USAGE
    return res


def _engine(job: Job, node: NodeState) -> tuple[int, str]:
    info = node.info.compute
    if info is None:
        return UNSUITABLE, "is not a compute node"
    want = job.task.engine.type.lower()
    have = [e.lower() for e in info.execution_engines]
    if want in have:
        return PREFERRED, ""
    return UNSUITABLE, (
        f"does not support the {want} engine, only {', '.join(info.execution_engines) or 'none'}"
    )


def _publisher(job: Job, node: NodeState) -> tuple[int, str]:
    info = node.info.compute
    want = job.task.publisher.type.lower()
    if not want or info is None:
        return 0, ""
    if want in [p.lower() for p in info.publishers]:
        return PREFERRED, ""
    return UNSUITABLE, (
        f"does not support the {want} publisher, only {', '.join(info.publishers) or 'none'}"
    )


def _labels(job: Job, node: NodeState) -> tuple[int, str]:
    hard = [c for c in job.constraints if not c.key.startswith("favour_")]
    soft = [c for c in job.constraints if c.key.startswith("favour_")]
    if not hard and not soft:
        return 0, ""
    if hard and not selector_matches(hard, node.info.labels):
        return UNSUITABLE, "does not match the job's constraints"
    score = PREFERRED if hard else 0
    for c in soft:
        plain = type(c)(key=c.key.removeprefix("favour_"), operator=c.operator, values=c.values)
        if selector_matches([plain], node.info.labels):
            score += PREFERRED
    return score, ""


def _max_usage(job: Job, node: NodeState) -> tuple[int, str]:
    info = node.info.compute
    if info is None or not info.max_job_requirements.cpu:
        return 0, ""
    usage = job_usage(job)
    if usage.fits_in(info.max_job_requirements):
        return PREFERRED, ""
    return UNSUITABLE, ("cannot fit the job: " + usage.shortfall(info.max_job_requirements))


def _previous(executions: Sequence[Execution]) -> Callable[[Job, NodeState], tuple[int, str]]:
    def rank(job: Job, node: NodeState) -> tuple[int, str]:
        mine = [e for e in executions if e.node_id == node.info.node_id]
        if not mine:
            return 30, ""
        if len(mine) == 1 and mine[0].compute_state.is_discarded():
            if mine[0].compute_details.get("Retryable") == "false":
                return UNSUITABLE, f"failed this job: {mine[0].compute_message}"
            if mine[0].compute_state in (
                ExecutionStateType.ASK_FOR_BID_REJECTED,
                ExecutionStateType.BID_REJECTED,
            ):
                why = mine[0].compute_message or "it declined to bid"
                return UNSUITABLE, f"rejected the job earlier: {why}"
            return 0, ""
        if any(e.compute_state == ExecutionStateType.COMPLETED for e in mine):
            return UNSUITABLE, "already completed an execution of this job"
        if any(e.is_active() for e in mine):
            return UNSUITABLE, "already runs an execution of this job"
        return UNSUITABLE, "already failed this job more than once"

    return rank


def _availability(job: Job, node: NodeState, best: float) -> int:
    info = node.info.compute
    if info is None or best <= 0:
        return 0
    avail = info.available_capacity
    weighted = avail.cpu * 0.4 + avail.memory / 1e9 * 0.3 + avail.disk / 1e10 * 0.2
    return int(80 * weighted / best)


def rank_nodes(
    job: Job,
    nodes: Sequence[NodeState],
    executions: Sequence[Execution],
    *,
    rng: random.Random | None = None,
) -> list[NodeRank]:
    """Rank every candidate node for ``job``: suitable ones first, best first."""
    rng = rng or random.Random()
    rankers = [_engine, _publisher, _labels, _max_usage, _previous(executions)]
    ranks: list[NodeRank] = []
    candidates = [n for n in nodes if n.info.node_type == NodeType.COMPUTE]

    def weighted(n: NodeState) -> float:
        a = n.info.compute.available_capacity if n.info.compute else Resources()
        return a.cpu * 0.4 + a.memory / 1e9 * 0.3 + a.disk / 1e10 * 0.2

    best = max((weighted(n) for n in candidates), default=0.0)
    for node in candidates:
        if node.membership != Membership.APPROVED:
            ranks.append(NodeRank(node, UNSUITABLE, f"is {node.membership.value.lower()}"))
            continue
        if node.connection != Connection.CONNECTED:
            ranks.append(NodeRank(node, UNSUITABLE, "is disconnected"))
            continue
        total = 0
        reason = ""
        for ranker in rankers:
            score, why = ranker(job, node)
            if score < 0:
                total, reason = UNSUITABLE, why
                break
            total += score
        if total >= 0:
            total += _availability(job, node, best) + rng.randrange(5)
        ranks.append(NodeRank(node, total, reason))
    ranks.sort(key=lambda r: (-r.score, r.node.info.node_id))
    return ranks
