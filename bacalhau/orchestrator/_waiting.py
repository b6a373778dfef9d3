"""Waiting jobs: why a job waits, in words that count nodes, and which waiting jobs a node
that joined or freed capacity should be offered first. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from bacalhau.models import Job, NodeState, Resources
from bacalhau.orchestrator._ranking import NodeRank, Obstacle, headroom, job_usage, rank_nodes


def queued_jobs_for_node(
    queued: Sequence[Job],
    node: NodeState,
    *,
    limit: int = 16,
) -> list[Job]:
    """Which waiting jobs to re-evaluate now that ``node`` joined or has more room.

    Highest priority first, then oldest; only jobs the node could run, and only as many as
    fit in what it can take (its headroom), at most ``limit``. The others keep waiting for
    the next change (or their safety-net timer).
    """
    room = headroom(node)
    picked: list[Job] = []
    for job in sorted(queued, key=lambda j: (-j.priority, j.create_time, j.id)):
        if len(picked) >= limit:
            break
        if not job.tasks or job.state.is_terminal():
            continue
        # Whether it fits first: ranking a job costs more, and once the room is taken every
        # further job of a long queue would be ranked for nothing.
        usage = job_usage(job)
        if room is not None and not usage.fits_in(room):
            continue
        if not all(r.suitable for r in rank_nodes(job, [node], [])):
            continue
        if room is not None:
            room = Resources(
                cpu=room.cpu - usage.cpu,
                memory=room.memory - usage.memory,
                disk=room.disk - usage.disk,
                gpu=room.gpu - usage.gpu,
            )
        picked.append(job)
    return picked


def waiting_reason(job: Job, ranks: Sequence[NodeRank]) -> str:
    """Why a job waits, one line, counting nodes by obstacle: "waiting for a node: 2 nodes
    lack the wasm engine; 1 node is full". Stable while the obstacles are, so it is recorded
    once and again only when it changes."""
    if not ranks:
        return "waiting for a node: no compute node has joined"
    counts: dict[str, int] = {}
    said: dict[str, Obstacle] = {}
    for r in ranks:
        if not r.suitable and r.obstacle is not None:
            counts[r.obstacle.one] = counts.get(r.obstacle.one, 0) + 1
            said[r.obstacle.one] = r.obstacle
    if not counts:
        return f"waiting for a node: {job.count} needed, fewer suitable"
    order = sorted(counts, key=lambda one: (-counts[one], one))
    return "waiting for a node: " + "; ".join(said[one].count(counts[one]) for one in order)
