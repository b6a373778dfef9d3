"""What a node's earlier executions of a job say about asking it again. Pure functions.

A node that runs, or completed, the job's work is not asked again (a batch job's other
partitions excepted); one the job failed on as often as it may, or in a way no retry would
mend, or that declined to bid, is not either. Two refusals are for now only:

- the requester's approval hooks turned its bid down: asked again after a pause,
  :data:`RECONSIDER_AFTER_NS` doubling with each refusal, at most :data:`RECONSIDER_MAX_NS`
  (a budget, a hook that timed out: a "no" must not strand a job for good);
- an ask that never reached it (:data:`UNREACHED`: it died and gossip has not said so yet, a
  partition): no attempt at all, asked again after :data:`UNREACHED_AFTER_NS` doubling, at
  most :data:`UNREACHED_MAX_NS`, and given up on after :data:`UNREACHABLE_PATIENCE_NS`; or
  at once when the node is seen back (it joined, returned from the dead or restarted since).

A run its node interrupted as it shut down (``NodeShutdown``: an operator stopping or
restarting it) is no attempt either: the job is placed again at once elsewhere, and on that
node only once it is back (it joined or restarted since): asked while it stops, it would
interrupt the run again at once. A node that crashed is different: the job may have caused
it, so the run it reports interrupted after its restart counts.

Nor is an execution moved off a node's run queue before it started (:data:`MOVED`, see
``_queue_moves``): the job is placed again, and that node may be asked again at once. Nor
one lost with its node, gracefully or not, while it waited in that node's queue
(:data:`NEVER_STARTED`): it never ran.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from bacalhau.models import NODE_SHUTDOWN, Execution, ExecutionStateType, Job, never_retried

E = ExecutionStateType

#: Execution detail marking an ask the node never got (it could not be reached): not an
#: attempt at all, neither at the job (its retries) nor at the node.
UNREACHED = "Unreached"
#: Execution detail marking an execution taken back from its node's run queue before it
#: started, to run on a node with room: no attempt either.
MOVED = "MovedOffQueue"
#: Execution detail of a moved execution: the node the move chose for it (it had room then).
MOVED_TO = "MovedTo"
#: Execution detail of an accepted execution its node said waits in its run queue (the
#: value: when it began to wait, Unix ns); removed once it starts.
QUEUED = "QueuedOnNode"
#: Execution detail marking an execution lost with its node while it waited in that node's
#: run queue: it never ran, so it cannot have brought the node down; no attempt either.
NEVER_STARTED = "NeverStarted"
RECONSIDER_AFTER_NS = 10_000_000_000
RECONSIDER_MAX_NS = 300_000_000_000
UNREACHED_AFTER_NS = 2_000_000_000
UNREACHED_MAX_NS = 30_000_000_000
UNREACHABLE_PATIENCE_NS = 60_000_000_000

#: How the reasons below begin (ranking counts nodes by them).
FAILED_IT = "failed this job: "
USED_UP = "used up its attempts at this job"
TURNED_DOWN = "was turned down by an approval hook: "
#: How a requester's approval hook's rejection of a bid begins (the execution's message).
HOOK_REJECTION = "bid rejected by approval hook "
#: A bid this requester rejected for another reason (a bidder it did not know yet, a bid
#: past the executions the job needs): asked again after the same pause.
REFUSED = "had its bid rejected by this requester: "
UNREACHABLE = "could not be reached"
SHUT_DOWN = "shut down while running this job (asked again once it is back)"
RUNS_IT = "already runs an execution of this job"


def is_attempt(execution: Execution) -> bool:
    """Whether a failed execution used up an attempt at its job: not an ask that never
    reached its node, a run its node interrupted as it shut down, one moved off its node's
    queue, nor one lost with its node while it waited in its queue."""
    details = execution.compute_details
    return all(
        details.get(flag) != "true" for flag in (UNREACHED, NODE_SHUTDOWN, MOVED, NEVER_STARTED)
    )


def _unreached(execution: Execution) -> bool:
    return execution.compute_details.get(UNREACHED) == "true"


def shut_down(execution: Execution) -> bool:
    """Whether the execution's node interrupted it as it shut down."""
    return execution.compute_details.get(NODE_SHUTDOWN) == "true"


def move_targets(executions: Sequence[Execution]) -> set[str]:
    """The nodes that moves chose for executions of the job not placed again yet: the
    placement after a move goes there while it still has room. Ranking alone could put the
    job back into the queue it was taken from (its data is there, say), to wait and be
    moved again, without end. A move's target is spent once an execution of its partition
    is created after the move."""
    targets: set[str] = set()
    for moved in executions:
        target = moved.compute_details.get(MOVED_TO)
        if target and not any(
            e.partition_index == moved.partition_index and e.create_time > moved.modify_time
            for e in executions
        ):
            targets.add(target)
    return targets


def by_node(executions: Sequence[Execution]) -> dict[str, list[Execution]]:
    """The executions grouped by the node they were placed on."""
    grouped: dict[str, list[Execution]] = {}
    for e in executions:
        grouped.setdefault(e.node_id, []).append(e)
    return grouped


def reconsider_at(executions: Sequence[Execution]) -> int:
    """When a node whose bids for a job the hooks turned down (``executions``: that node's
    of that job) may be asked again (0: none turned down)."""
    refused = [e for e in executions if e.compute_state == E.BID_REJECTED]
    if not refused:
        return 0
    wait = min(RECONSIDER_AFTER_NS << min(len(refused) - 1, 16), RECONSIDER_MAX_NS)
    return max(e.modify_time for e in refused) + wait


def next_reconsideration(executions: Sequence[Execution], now: int) -> int:
    """The earliest time after ``now`` a node turned down for the job may be asked again
    (0: none waits): when a job waiting for nodes should look again."""
    times = [t for mine in by_node(executions).values() if (t := reconsider_at(mine)) > now]
    return min(times, default=0)


def why_not_again(
    job: Job, mine: Sequence[Execution], attempts_per_node: int, now: int, *, back_since: int = 0
) -> str:
    """Why a node with executions ``mine`` of ``job`` is not to be asked for it now ("" if
    it may be). ``back_since``: when the node last joined, came back or restarted (Unix ns):
    asks that failed to reach it before then are past."""
    # A node that completed one partition of a batch job may run another (one whose node
    # was lost, say); a verified job's replicas need distinct nodes.
    partitioned = job.type == "batch" and not job.verified and job.count > 1
    if not partitioned and any(e.compute_state == E.COMPLETED for e in mine):
        return "already completed an execution of this job"
    if any(e.is_active() for e in mine):
        return RUNS_IT
    for e in mine:
        if never_retried(e.compute_details):
            return f"{FAILED_IT}{e.compute_message}"
        if e.compute_state == E.ASK_FOR_BID_REJECTED:
            return f"turned the job down: {e.compute_message or 'it gave no reason'}"
    if any(shut_down(e) and e.modify_time > back_since for e in mine):
        return SHUT_DOWN
    unreached = [e for e in mine if _unreached(e) and e.modify_time > back_since]
    tries = [e for e in mine if is_attempt(e)]
    last = max((e.modify_time for e in unreached), default=0)
    if unreached and not any(e.modify_time > last for e in tries):
        # The last word from this node is a failed ask: it may be down for now.
        first = min(e.modify_time for e in unreached)
        pause = min(UNREACHED_AFTER_NS << min(len(unreached) - 1, 16), UNREACHED_MAX_NS)
        if now - first >= UNREACHABLE_PATIENCE_NS:
            return f"{UNREACHABLE} for {(now - first) / 1e9:.0f}s"
        if now < last + pause:
            return f"{UNREACHABLE} moments ago (asked again in {_seconds(last + pause - now)}s)"
    again = reconsider_at(tries)
    if now < again:
        refusal = max(
            (e for e in tries if e.compute_state == E.BID_REJECTED), key=lambda e: e.modify_time
        )
        why = refusal.compute_message or "no reason given"
        prefix = TURNED_DOWN if why.startswith(HOOK_REJECTION) else REFUSED
        why = why.removeprefix("bid rejected: ")
        return f"{prefix}{why} (asked again in {_seconds(again - now)}s)"
    failed = sum(1 for e in tries if e.compute_state == E.FAILED)
    if failed >= attempts_per_node:
        return f"{USED_UP} ({failed} of {attempts_per_node} failed)"
    # Bids the hooks turned down are not attempts (the node is asked again after a pause),
    # nor are partitions it completed.
    tried = sum(1 for e in tries if e.compute_state not in (E.BID_REJECTED, E.COMPLETED))
    if tried >= max(1, attempts_per_node):
        return "already tried this job too many times"
    return ""


#: How a reason says when the node is asked again (only true of a job that waits).
_ASKED_AGAIN = re.compile(r" \(asked again in \d+s\)$")


def as_final(reason: str) -> str:
    """``reason`` as a failed job tells it: without when the node would be asked again."""
    return _ASKED_AGAIN.sub("", reason)


def _seconds(ns: int) -> int:
    return math.ceil(ns / 1e9)
