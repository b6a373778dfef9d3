"""The scheduler's operator defaults (a job's own ``Reschedule`` and ``Timeouts`` win)."""

from __future__ import annotations

from dataclasses import dataclass

from bacalhau.orchestrator._ranking import DEFAULT_ATTEMPTS_PER_NODE


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The operator's defaults; a job's own ``Reschedule`` and ``Timeouts`` take precedence."""

    #: Failed executions after which a batch job gives up (the first try included).
    max_attempts: int = 3
    #: Failed executions of one job a single node may have before it is not asked again.
    max_attempts_per_node: int = DEFAULT_ATTEMPTS_PER_NODE
    #: Wait before the first retry after a failure (seconds); doubled for each further
    #: failure, up to ``retry_max_delay``.
    retry_delay: float = 1.0
    retry_max_delay: float = 30.0
    #: Used when a job sets no QueueTimeout (seconds; 0 = fail as soon as no node fits,
    #: unless the only obstacle is nodes that are full: those free capacity by themselves).
    default_queue_timeout: int = 0
    #: Safety net only (a node joining or freeing capacity re-evaluates queued jobs at
    #: once): the first delay before a queued job is looked at again, in seconds; it grows
    #: with the time waited, up to ``queue_backoff_max``.
    queue_backoff: float = 1.0
    queue_backoff_max: float = 30.0
    #: When a node joins or frees capacity, at most this many queued jobs are re-evaluated
    #: (highest priority, then oldest, first): no thundering herd on one node.
    requeue_per_change: int = 16
    #: How long past its ExecutionTimeout an execution may stay unreported before the
    #: requester cancels it on its node and fails it (the node enforces the timeout itself;
    #: this catches a node that went silent).
    execution_timeout_grace: float = 30.0
    #: Seconds after the requester starts during which compute nodes that ran before may not
    #: have (re)joined yet (0: none). The orchestrator turns it into ``schedule``'s
    #: ``settling_until``.
    rejoin_grace: float = 0.0
    #: Seconds a batch job that lacks nodes waits for a compute node that died or left to
    #: come back before failing: a restarted node, or one declared dead by mistake under
    #: load, then takes the job's retry instead of the job failing (0: fail at once).
    lost_node_wait: float = 0.0
    #: Seconds a node declared dead must have been silent before its running executions
    #: are failed and placed again (0: at once). Gossip declares a silent node dead in a
    #: second or two, which a stalled process (a long GC pause, SIGSTOP, a saturated
    #: host) also causes: a node back within the grace keeps its work. A node that left,
    #: or vanished, loses it at once.
    lost_execution_grace: float = 0.0
    #: Seconds an execution may wait in a compute node's run queue (accepted there, not
    #: started: the node took it beyond its free room) before it is moved to another node
    #: that has room for it now (0: never moved). The node says what waits once it has
    #: waited a couple of seconds, so a shorter value acts as that.
    queue_move_after: float = 0.0
    #: Whether ops and daemon executions may be sent pre-approved (one round: the node runs
    #: what it bids on). False when the requester has approval hooks: every bid then waits
    #: for them, whatever the job type.
    pre_approve: bool = True
    #: Nodes whose reputation (see ``orchestrator._reputation``) is below this get no jobs
    #: (0: off; a node without a record has 0.5).
    min_reputation: float = 0.0
    #: Seconds a compute node may hold its answer to a pre-approved ask to carry the
    #: execution's callbacks in it (0: the node sends them by calls of its own).
    answer_linger: float = 0.05
