"""Node ranking: pure functions of (job, node, previous executions).

Each ranker returns a score; any negative score makes the node unsuitable and carries the
reason shown to the user. Scores of suitable nodes are summed; higher is better. The ranks
follow Bacalhau's (engines, publishers, labels, max usage, previous attempts, available
capacity, a small random term) so placement feels familiar; a node that does not advertise an
input source type the job reads (or advertises none) is unsuitable too, so it is not asked
to bid.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bacalhau.models import (
    Connection,
    Execution,
    Job,
    LabelSelectorRequirement,
    LivenessState,
    Membership,
    NodeState,
    NodeType,
    Resources,
    format_selector,
    selector_matches,
    shallow_copy,
)
from bacalhau.orchestrator import _attempts as attempts
from bacalhau.orchestrator._attempts import by_node, move_targets, why_not_again

UNSUITABLE = -1
PREFERRED = 10
#: What the node a queue move chose is worth while it has free room for the job: more than
#: everything else a node can score, locality included (see ``_attempts.move_targets``).
MOVE_TARGET = 1000

#: What a job uses when it asks for nothing (Bacalhau's compute-side defaults).
DEFAULT_USAGE = Resources(cpu=0.1, memory=100 * 2**20)


#: Over-subscription allowance: a node takes work while what it runs, what it has queued and
#: the new job stay within this multiple of its capacity (Bacalhau's OverSubscription rank).
OVERSUBSCRIPTION = 1.5


@dataclass(frozen=True, slots=True)
class Obstacle:
    """Why a node cannot take a job, in words that count well: "1 node is full", "2 nodes
    lack the wasm engine". Several nodes with the same obstacle are told once."""

    one: str
    many: str
    #: True when the obstacle goes away by itself (the node frees capacity): a job blocked
    #: only by such obstacles waits for it instead of failing.
    passing: bool = False

    def count(self, n: int) -> str:
        return f"1 node {self.one}" if n == 1 else f"{n} nodes {self.many}"


@dataclass(frozen=True, slots=True)
class NodeRank:
    node: NodeState
    score: int
    reason: str = ""
    obstacle: Obstacle | None = None

    @property
    def suitable(self) -> bool:
        return self.score >= 0


FULL = Obstacle("is full", "are full", passing=True)
#: The node has had its turn at this job (declined it, or runs or ran it).
TRIED = Obstacle("already tried this job", "already tried this job")
#: The job failed on the node as often as it may (or in a way no retry there would mend).
FAILED_HERE = Obstacle("failed this job", "failed this job")
#: The requester's approval hooks turned the node's bid down a moment ago; it is asked
#: again after a pause (see ``_attempts``).
TURNED_DOWN = Obstacle(
    "was turned down by an approval hook", "were turned down by an approval hook"
)
#: The requester rejected the node's bid a moment ago for a reason of its own (see
#: ``_attempts.REFUSED``); it is asked again after a pause.
REFUSED = Obstacle("had its bid rejected by this requester", "had their bids rejected")
#: The node could not be reached a moment ago (it died and gossip has not said so yet, a
#: partition): a passing obstacle, since it may well come back.
UNREACHABLE = Obstacle(
    "could not be reached moments ago", "could not be reached moments ago", passing=True
)
#: Unreachable for a minute: no longer waited for; a job that needs it fails, naming it.
UNREACHABLE_GONE = Obstacle(
    "could not be reached for a minute", "could not be reached for a minute"
)
#: A node that died or left moments ago: it may well come back (a restart, a false death
#: under load), so a job that needs it waits a while instead of failing.
RECENTLY_LOST = Obstacle(
    "was lost moments ago and may come back", "were lost moments ago and may come back", True
)
DISCONNECTED = Obstacle("is disconnected", "are disconnected")
#: The node runs one of the job's executions already (a service's replica, say).
RUNS_IT = Obstacle("already runs one of its executions", "already run one of its executions")
#: The node interrupted the job's run as it shut down: asked again once it is back (a
#: restart), so a job that needs it waits, as for a node lost moments ago.
SHUT_DOWN = Obstacle(
    "shut down while running this job", "shut down while running this job", passing=True
)


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
    return UNSUITABLE, _unsupported(want, "engines", info.execution_engines)


def _publisher(job: Job, node: NodeState) -> tuple[int, str]:
    info = node.info.compute
    want = job.task.publisher.type.lower()
    if not want or info is None:
        return 0, ""
    if want in [p.lower() for p in info.publishers]:
        return PREFERRED, ""
    return UNSUITABLE, _unsupported(want, "publishers", info.publishers)


def missing_input_source(job: Job, node: NodeState) -> str | None:
    """The first input source type of ``job`` (as the job spells it) that ``node`` does not
    advertise, or None. A node that advertises no input sources offers none: asking it to
    bid for a job with inputs would only earn a refusal."""
    info = node.info.compute
    if info is None:
        return None
    have = {s.lower() for s in info.storage_sources}
    for source in job.task.input_sources:
        if source.source.type.lower() not in have:
            return source.source.type
    return None


def _input_sources(job: Job, node: NodeState) -> tuple[int, str]:
    kind = missing_input_source(job, node)
    if kind is None:
        return 0, ""
    offered = node.info.compute.storage_sources if node.info.compute else []
    return UNSUITABLE, _unsupported(kind, "input sources", offered)


def _unsupported(want: str, kinds: str, offered: list[str]) -> str:
    """Why a node cannot take a job needing ``want``: "does not support X" as Bacalhau's
    ranking says it (scripts look for it), then what the node offers."""
    if not offered:
        return f"does not support {want}: it has no {kinds}"
    return f"does not support {want}: its {kinds} are {', '.join(offered)}"


#: Labels of a node a refusal lists at most (a node may carry many).
_LABELS_SHOWN = 8


def _constraints_missed(hard: list[LabelSelectorRequirement], labels: Mapping[str, str]) -> str:
    """Which of the job's constraints the node misses, and the labels it has (as Bacalhau
    says "labels ... don't match required selectors ..."), so that a user with several
    constraints sees which one no node meets."""
    missed = [c for c in hard if not selector_matches([c], labels)]
    has = [f"{k}={v}" if v else k for k, v in sorted(labels.items())]
    if len(has) > _LABELS_SHOWN:
        has = [*has[:_LABELS_SHOWN], f"and {len(has) - _LABELS_SHOWN} more"]
    return (
        f"does not match the job's constraints: needs {format_selector(missed)} "
        f"(its labels: {', '.join(has) or 'none'})"
    )


def _labels(job: Job, node: NodeState) -> tuple[int, str]:
    hard = [c for c in job.constraints if not c.key.startswith("favour_")]
    soft = [c for c in job.constraints if c.key.startswith("favour_")]
    if not hard and not soft:
        return 0, ""
    if hard and not selector_matches(hard, node.info.labels):
        return UNSUITABLE, _constraints_missed(hard, node.info.labels)
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


def headroom(node: NodeState) -> Resources | None:
    """What ``node`` can still take on, over-subscription included; None when it has not
    said what its capacity is (then it is never considered full)."""
    info = node.info.compute
    if info is None or not (info.max_capacity.cpu or info.max_capacity.memory):
        return None
    top, free, queued = info.max_capacity, info.available_capacity, info.queue_capacity
    spare = OVERSUBSCRIPTION - 1.0
    return Resources(
        cpu=top.cpu * spare + free.cpu - queued.cpu,
        memory=int(top.memory * spare) + free.memory - queued.memory,
        disk=int(top.disk * spare) + free.disk - queued.disk if top.disk else 2**62,
        gpu=int(top.gpu * spare) + free.gpu - queued.gpu if top.gpu else 2**31,
    )


def _capacity(job: Job, node: NodeState) -> tuple[int, str]:
    return _fits(job, headroom(node))


def _free_capacity(job: Job, node: NodeState) -> tuple[int, str]:
    """Only free room counts, not queue room: for a job whose QueueTimeout has passed, an
    execution waiting in a node's queue would fail there at once."""
    info = node.info.compute
    if info is None or not (info.max_capacity.cpu or info.max_capacity.memory):
        return 0, ""
    return _fits(job, info.available_capacity)


def _fits(job: Job, room: Resources | None) -> tuple[int, str]:
    if room is None:
        return 0, ""
    usage = job_usage(job)
    if usage.fits_in(room):
        return 0, ""
    return UNSUITABLE, "is full: " + usage.shortfall(room, room="left")


#: Score taken off a node that gossip suspects of failure (it still ranks, below the rest).
SUSPECT_PENALTY = 200

#: Failed executions of one job a node may have before it is not asked again (Bacalhau's).
DEFAULT_ATTEMPTS_PER_NODE = 2


def _previous(
    executions: Sequence[Execution], attempts_per_node: int, now: int
) -> Callable[[Job, NodeState], tuple[int, str]]:
    # Grouped once: ranking asks for every node of the cluster.
    grouped = by_node(executions)

    def rank(job: Job, node: NodeState) -> tuple[int, str]:
        mine = grouped.get(node.info.node_id)
        if not mine:
            return 30, ""
        why = why_not_again(job, mine, attempts_per_node, now, back_since=node.back_since_ns)
        return (UNSUITABLE, why) if why else (0, "")

    return rank


def _obstacle(ranker: object, job: Job, node: NodeState, reason: str) -> Obstacle:
    """The countable obstacle behind a ranker's refusal."""
    if ranker is _engine:
        if reason == "is not a compute node":
            return Obstacle("is not a compute node", "are not compute nodes")
        engine = job.task.engine.type.lower()
        return Obstacle(f"lacks the {engine} engine", f"lack the {engine} engine")
    if ranker is _publisher:
        publisher = job.task.publisher.type.lower()
        return Obstacle(f"lacks the {publisher} publisher", f"lack the {publisher} publisher")
    if ranker is _input_sources:
        kind = missing_input_source(job, node)
        return Obstacle(f"lacks input source {kind}", f"lack input source {kind}")
    if ranker is _labels:
        return Obstacle("does not match the constraints", "do not match the constraints")
    if ranker is _max_usage:
        return Obstacle("is too small for the job", "are too small for the job")
    if ranker is _capacity or ranker is _free_capacity:
        return FULL
    if reason.startswith((attempts.FAILED_IT, attempts.USED_UP)):
        return FAILED_HERE
    if reason.startswith(attempts.TURNED_DOWN):
        return TURNED_DOWN
    if reason.startswith(attempts.REFUSED):
        return REFUSED
    if reason.startswith(attempts.UNREACHABLE):
        return UNREACHABLE if "moments ago" in reason else UNREACHABLE_GONE
    if reason == attempts.SHUT_DOWN:
        return SHUT_DOWN
    if reason == attempts.RUNS_IT:
        return RUNS_IT
    return TRIED


@dataclass(slots=True)
class Placed:
    """What this requester has placed on one node and not yet seen end: how many
    executions, and what they hold. Node records arrive by gossip, late: a record may not
    show executions placed a moment ago, so ranking counts these too (see :func:`with_placed`).
    """

    count: int = 0
    allocated: Resources = field(default_factory=Resources)


#: Score a node loses per execution it holds beyond the least loaded suitable node's: more
#: than the random term, so that equal nodes take consecutive jobs in turn.
SPREAD_STEP = 6
#: At most this much is taken off for load (as much as the availability rank gives), so
#: that a preference (labels, engines) still outweighs a modest imbalance.
SPREAD_MAX = 80


def _load(node: NodeState) -> int:
    info = node.info.compute
    return info.running_executions + info.enqueued_executions if info else 0


def per_resource(
    fn: Callable[[float, float, float, float], tuple[float, float]],
    top: Resources,
    free: Resources,
    queued: Resources,
    amount: Resources,
) -> tuple[Resources, Resources]:
    """``fn(total, free, queued, amount)`` for each resource of a node's record: the new
    free room and queue it gives, as :class:`Resources`."""
    cpu = fn(top.cpu, free.cpu, queued.cpu, amount.cpu)
    memory = fn(top.memory, free.memory, queued.memory, amount.memory)
    disk = fn(top.disk, free.disk, queued.disk, amount.disk)
    gpu = fn(top.gpu, free.gpu, queued.gpu, amount.gpu)
    return (
        Resources(cpu[0], int(memory[0]), int(disk[0]), int(gpu[0])),
        Resources(cpu[1], int(memory[1]), int(disk[1]), int(gpu[1])),
    )


def _beyond_record(top: float, free: float, queued: float, held: float) -> tuple[float, float]:
    """One resource of a node's record (its total, what is free, what its queue holds) with
    what this requester holds there and the record does not show yet: that takes the free
    room first and waits in the node's queue beyond it, as the node itself does with the
    executions it is sent. A record showing as much use as is held stays as it is."""
    extra = held - (top - free + queued)
    if not top or extra <= 0:
        return free, queued
    taken = min(free, extra)
    return free - taken, queued + extra - taken


def with_placed(nodes: Sequence[NodeState], placed: Mapping[str, Placed]) -> list[NodeState]:
    """The nodes as ranking should see them: each record with what this requester placed
    on the node and has not seen end, which a late record may not show yet.

    Per resource, the larger of the record's use (running and queued) and what is placed
    wins, what is placed beyond the free room counting as queued; and so does the larger of
    the record's execution count and the placed count: a record never shows fewer of our
    executions than run unless it predates them, so nothing is counted twice.
    """
    out: list[NodeState] = []
    for node in nodes:
        info = node.info.compute
        mine = placed.get(node.info.node_id)
        if info is None or mine is None or not mine.count:
            out.append(node)
            continue
        available, in_queue = per_resource(
            _beyond_record,
            info.max_capacity,
            info.available_capacity,
            info.queue_capacity,
            mine.allocated,
        )
        running = max(info.running_executions, mine.count - info.enqueued_executions)
        # Field by field (``shallow_copy``): this runs for every node on every placement.
        compute = shallow_copy(info)
        compute.available_capacity = available
        compute.queue_capacity = in_queue
        compute.running_executions = running
        node_info = shallow_copy(node.info)
        node_info.compute = compute
        seen = shallow_copy(node)
        seen.info = node_info
        out.append(seen)
    return out


def _weighted(avail: Resources) -> float:
    return avail.cpu * 0.4 + avail.memory / 1e9 * 0.3 + avail.disk / 1e10 * 0.2


#: Availability ranks in steps of this share of the best node's: equal nodes on one host
#: report slightly different free memory and disk, and a point's difference would make one
#: of them win most ties.
AVAILABILITY_STEP = 0.05


def _availability(avail: Resources, best: float) -> int:
    if best <= 0:
        return 0
    share = _weighted(avail) / best
    return int(80 * round(share / AVAILABILITY_STEP) * AVAILABILITY_STEP)


#: What holding a job's input data is worth: more than availability (at most 80) and load
#: spreading can move, so a job runs where its data is by default; more data held, more worth.
LOCALITY_BASE = 100
LOCALITY_MAX_BONUS = 100


def _input_roots(job: Job) -> list[str]:
    """Root CIDs of the job's ``ipfs`` inputs (``CID``, ``CID/path``, ``ipfs://CID/...``)."""
    roots = []
    for source in job.task.input_sources:
        if source.source.type.lower() != "ipfs":
            continue
        text = str(source.source.params.get("CID", "")).strip()
        for prefix in ("ipfs://", "/ipfs/"):
            text = text.removeprefix(prefix)
        if root := text.partition("/")[0]:
            roots.append(root)
    return roots


def locality_score(job: Job, node: NodeState) -> int:
    """Data locality: a node that advertises the roots of the job's ``ipfs`` inputs ranks
    higher, by the log of the bytes it holds (a 1 GiB input outweighs a 1 KiB one)."""
    info = node.info.compute
    if info is None or not info.held_roots:
        return 0
    held = sum(info.held_roots.get(root, 0) for root in set(_input_roots(job)))
    if not any(root in info.held_roots for root in _input_roots(job)):
        return 0
    return LOCALITY_BASE + min(LOCALITY_MAX_BONUS, int(10 * math.log2(1 + held / 2**20)))


def rank_nodes(
    job: Job,
    nodes: Sequence[NodeState],
    executions: Sequence[Execution],
    *,
    rng: random.Random | None = None,
    attempts_per_node: int = DEFAULT_ATTEMPTS_PER_NODE,
    placed: Mapping[str, Placed] | None = None,
    min_reputation: float = 0.0,
    now: int = 0,
    lost_wait_ns: int = 0,
    queue_room: bool = True,
) -> list[NodeRank]:
    """Rank every candidate node for ``job``: suitable ones first, best first.

    A node that carries a reputation (the requester's record of its verified results, see
    ``orchestrator._reputation``) has its score multiplied by it, so a node caught
    disagreeing ranks below its peers for every job; below ``min_reputation`` (the
    operator's threshold, 0: off) it is unsuitable.

    A disconnected node that died or left less than ``lost_wait_ns`` before ``now`` (as
    this requester saw it go) is a passing obstacle: a job it alone could take waits for it
    to come back.

    ``queue_room`` False: a node must have free room for the job, not only room in its
    queue (over-subscription); once the job's QueueTimeout has passed, an execution that
    waited in a node's queue would fail there at once.

    A node that has failed ``attempts_per_node`` executions of the job is not asked again.
    The node a queue move chose for one of the job's executions comes first while it has
    free room for the job (:func:`~bacalhau.orchestrator._attempts.move_targets`).
    A node loses :data:`SPREAD_STEP` per execution it holds beyond the least loaded suitable
    node, so that consecutive jobs spread over equal nodes. ``placed`` (or nodes passed
    through :func:`with_placed`, which is idempotent) makes what this requester just placed
    count before the nodes' records show it.
    """
    if placed:
        nodes = with_placed(nodes, placed)
    rng = rng or random.Random()
    rankers: list[Callable[[Job, NodeState], tuple[int, str]]] = [
        _engine,
        _publisher,
        _input_sources,
        _labels,
        _max_usage,
        _previous(executions, attempts_per_node, now or time.time_ns()),
        _capacity if queue_room else _free_capacity,
    ]
    ranks: list[NodeRank] = []
    candidates = [n for n in nodes if n.info.node_type == NodeType.COMPUTE]

    avail = {
        n.info.node_id: n.info.compute.available_capacity if n.info.compute else Resources()
        for n in candidates
    }
    best = max((_weighted(a) for a in avail.values()), default=0.0)
    aimed = move_targets(executions) if executions else set()
    loads: dict[str, int] = {}
    for node in candidates:
        if node.membership != Membership.APPROVED:
            state = node.membership.value.lower()
            ranks.append(
                NodeRank(node, UNSUITABLE, f"is {state}", Obstacle(f"is {state}", f"are {state}"))
            )
            continue
        if node.reputation is not None and node.reputation.score < min_reputation:
            ranks.append(
                NodeRank(
                    node,
                    UNSUITABLE,
                    f"has a reputation of {node.reputation.score:.2f}, below the operator's "
                    f"minimum of {min_reputation:g} ({node.reputation.disagreements} "
                    "disagreeing verified result(s))",
                    Obstacle("has too low a reputation", "have too low a reputation"),
                )
            )
            continue
        if node.connection != Connection.CONNECTED:
            ranks.append(_disconnected(node, now, lost_wait_ns))
            continue
        total = 0
        reason = ""
        obstacle: Obstacle | None = None
        for ranker in rankers:
            score, why = ranker(job, node)
            if score < 0:
                total, reason, obstacle = UNSUITABLE, why, _obstacle(ranker, job, node, why)
                break
            total += score
        if total >= 0:
            total += _availability(avail[node.info.node_id], best) + rng.randrange(5)
            total += locality_score(job, node)
            if node.info.node_id in aimed and job_usage(job).fits_in(avail[node.info.node_id]):
                total += MOVE_TARGET
            loads[node.info.node_id] = _load(node)
        ranks.append(NodeRank(node, total, reason, obstacle))
    least = min(loads.values(), default=0)
    for i, r in enumerate(ranks):
        node_id = r.node.info.node_id
        if node_id not in loads:
            continue
        score = r.score - min(SPREAD_MAX, SPREAD_STEP * (loads[node_id] - least))
        if r.node.liveness == LivenessState.SUSPECT:
            # Usable, but it may be failing: any healthy node that fits goes first.
            score -= SUSPECT_PENALTY
        if r.node.reputation is not None:
            score = int(score * r.node.reputation.score)
        ranks[i] = NodeRank(r.node, max(0, score), r.reason, r.obstacle)
    # Equal suitable nodes in a random order (node IDs would favour one, a job after another);
    # unsuitable ones by ID, so that the reasons a job cannot run read the same every time.
    ranks.sort(
        key=lambda r: (-r.score, rng.random() if r.score > UNSUITABLE else 0.0, r.node.info.node_id)
    )
    return ranks


def _disconnected(node: NodeState, now: int, lost_wait_ns: int) -> NodeRank:
    lost_for = now - node.last_seen_ns
    if (
        lost_wait_ns > 0
        # A node that left may be restarting (an upgrade, `systemctl restart`): waited for
        # like one that died.
        and node.liveness.is_down()
        and node.last_seen_ns > 0
        and 0 <= lost_for < lost_wait_ns
    ):
        how = "lost" if node.liveness == LivenessState.DEAD else "left"
        return NodeRank(
            node,
            UNSUITABLE,
            f"is disconnected ({how} {lost_for / 1e9:.1f}s ago; jobs wait up to "
            f"{lost_wait_ns / 1e9:g}s for it to come back)",
            RECENTLY_LOST,
        )
    return NodeRank(node, UNSUITABLE, "is disconnected", DISCONNECTED)
