"""Every state and every allowed transition, in one place.

Jobs (requester view)::

    Pending ──► Queued ──► Running ──► Completed
       │          │  ▲        │
       │          │  └────────┤            (no node free: back to Queued)
       ├──────────┴───────────┴──► Failed ──► Stopped
       └──────────────────────────────────► Stopped   (user stop, from any non-terminal)

Executions (requester view, bprotocol)::

    New ─► AskForBid ─► AskForBidAccepted ─► BidAccepted ─► Running ─► Publishing ─► Completed
     │        │                │                  │            │           │
     │        └► AskForBidRejected                └────────────┴───────────┴─► Failed / Cancelled
     └► BidAccepted (pre-approved)           └► BidRejected

    Completed ─► Failed   only for a verified job's replica whose results the verifier rejected

Executions (compute node's own store)::

    Created ─► BidAccepted ─► Running ─► Publishing ─► Completed
       │            │            │           │
       └► BidRejected            └───────────┴─► Failed / Cancelled (from any non-terminal)

Member liveness (gossip membership; the version is the node's signed record version, which
is also its SWIM incarnation number)::

    Alive ──► Suspect ──► Dead ──► Left      (Left: the node's own signed "leaving" record,
      ▲ │                    ▲        ▲        from Alive, Suspect or Dead)
      │ └────────────────────┴────────┘
      └─── Suspect, Dead, Left: only a newer record signed by the node itself revives it

The stores call :func:`check_job_transition` / :func:`check_execution_transition` /
:func:`check_local_transition` on every write and refuse anything not in these tables; the
membership core calls :func:`check_liveness_transition` on every liveness change.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from bacalhau.errors import InvalidJobSpec, InvalidTransition


class JobStateType(IntEnum):
    """Job states; on the wire they are strings (``"Completed"``)."""

    UNDEFINED = 0
    PENDING = 1
    QUEUED = 2
    RUNNING = 3
    COMPLETED = 4
    FAILED = 5
    STOPPED = 6

    @property
    def wire(self) -> str:
        return _JOB_NAMES[self]

    @classmethod
    def parse(cls, value: object) -> JobStateType:
        if isinstance(value, str):
            for state, name in _JOB_NAMES.items():
                if name.lower() == value.strip().lower():
                    return state
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
            return cls(value)
        raise InvalidJobSpec(f"unknown job state {value!r}", field="State.StateType")

    def is_terminal(self) -> bool:
        return self in (JobStateType.COMPLETED, JobStateType.FAILED, JobStateType.STOPPED)


_JOB_NAMES = {
    JobStateType.UNDEFINED: "Undefined",
    JobStateType.PENDING: "Pending",
    JobStateType.QUEUED: "Queued",
    JobStateType.RUNNING: "Running",
    JobStateType.COMPLETED: "Completed",
    JobStateType.FAILED: "Failed",
    JobStateType.STOPPED: "Stopped",
}


class ExecutionStateType(IntEnum):
    """Execution states as the requester observes them; values are the v1.5.2 numbering."""

    UNDEFINED = 0
    NEW = 1
    ASK_FOR_BID = 2
    ASK_FOR_BID_ACCEPTED = 3
    ASK_FOR_BID_REJECTED = 4
    BID_ACCEPTED = 5
    RUNNING = 6
    PUBLISHING = 7
    BID_REJECTED = 8
    COMPLETED = 9
    FAILED = 10
    CANCELLED = 11

    def wire(self, *, v152: bool = False) -> int:
        """The int a client expects: 0-11 for v1.5.2+ clients, else the 0-9 numbering."""
        if v152:
            return int(self)
        return _V14_WIRE[self]

    @classmethod
    def from_wire(cls, value: int, *, v152: bool = False) -> ExecutionStateType:
        if v152:
            return cls(value)
        for state, num in _V14_WIRE.items():
            if num == value and state not in (cls.RUNNING, cls.PUBLISHING):
                return state
        raise ValueError(f"unknown execution state {value}")

    @property
    def label(self) -> str:
        return _EXEC_NAMES[self]

    def is_terminal(self) -> bool:
        return self in _EXEC_TERMINAL

    def is_discarded(self) -> bool:
        return self in (
            ExecutionStateType.ASK_FOR_BID_REJECTED,
            ExecutionStateType.BID_REJECTED,
            ExecutionStateType.FAILED,
            ExecutionStateType.CANCELLED,
        )

    def is_executing(self) -> bool:
        return self in (
            ExecutionStateType.BID_ACCEPTED,
            ExecutionStateType.RUNNING,
            ExecutionStateType.PUBLISHING,
        )


_V14_WIRE = {
    ExecutionStateType.UNDEFINED: 0,
    ExecutionStateType.NEW: 1,
    ExecutionStateType.ASK_FOR_BID: 2,
    ExecutionStateType.ASK_FOR_BID_ACCEPTED: 3,
    ExecutionStateType.ASK_FOR_BID_REJECTED: 4,
    ExecutionStateType.BID_ACCEPTED: 5,
    # v1.4 clients have no Running/Publishing: they read as BidAccepted ("executing").
    ExecutionStateType.RUNNING: 5,
    ExecutionStateType.PUBLISHING: 5,
    ExecutionStateType.BID_REJECTED: 6,
    ExecutionStateType.COMPLETED: 7,
    ExecutionStateType.FAILED: 8,
    ExecutionStateType.CANCELLED: 9,
}

_EXEC_NAMES = {
    ExecutionStateType.UNDEFINED: "Undefined",
    ExecutionStateType.NEW: "New",
    ExecutionStateType.ASK_FOR_BID: "AskForBid",
    ExecutionStateType.ASK_FOR_BID_ACCEPTED: "AskForBidAccepted",
    ExecutionStateType.ASK_FOR_BID_REJECTED: "AskForBidRejected",
    ExecutionStateType.BID_ACCEPTED: "BidAccepted",
    ExecutionStateType.RUNNING: "Running",
    ExecutionStateType.PUBLISHING: "Publishing",
    ExecutionStateType.BID_REJECTED: "BidRejected",
    ExecutionStateType.COMPLETED: "Completed",
    ExecutionStateType.FAILED: "Failed",
    ExecutionStateType.CANCELLED: "Cancelled",
}

_EXEC_TERMINAL = frozenset(
    {
        ExecutionStateType.ASK_FOR_BID_REJECTED,
        ExecutionStateType.BID_REJECTED,
        ExecutionStateType.COMPLETED,
        ExecutionStateType.FAILED,
        ExecutionStateType.CANCELLED,
    }
)


class ExecutionDesiredStateType(IntEnum):
    """What the requester wants an execution to do; ints on the wire."""

    PENDING = 0
    RUNNING = 1
    STOPPED = 2

    @property
    def label(self) -> str:
        return ("Pending", "Running", "Stopped")[self]


class LocalExecutionState(StrEnum):
    """Execution states in a compute node's own store."""

    CREATED = "Created"
    BID_ACCEPTED = "BidAccepted"
    RUNNING = "Running"
    PUBLISHING = "Publishing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    BID_REJECTED = "BidRejected"

    def is_terminal(self) -> bool:
        return self in (
            LocalExecutionState.COMPLETED,
            LocalExecutionState.FAILED,
            LocalExecutionState.CANCELLED,
            LocalExecutionState.BID_REJECTED,
        )


J = JobStateType
E = ExecutionStateType
D = ExecutionDesiredStateType
L = LocalExecutionState

#: Allowed job transitions (from -> set of to).
JOB_TRANSITIONS: dict[JobStateType, frozenset[JobStateType]] = {
    J.UNDEFINED: frozenset({J.PENDING}),
    J.PENDING: frozenset({J.QUEUED, J.RUNNING, J.COMPLETED, J.FAILED, J.STOPPED}),
    J.QUEUED: frozenset({J.RUNNING, J.COMPLETED, J.FAILED, J.STOPPED}),
    J.RUNNING: frozenset({J.QUEUED, J.COMPLETED, J.FAILED, J.STOPPED}),
    J.FAILED: frozenset({J.STOPPED}),
    J.COMPLETED: frozenset(),
    J.STOPPED: frozenset(),
}

#: Allowed observed-execution transitions at the requester.
EXECUTION_TRANSITIONS: dict[ExecutionStateType, frozenset[ExecutionStateType]] = {
    E.UNDEFINED: frozenset({E.NEW}),
    E.NEW: frozenset(
        {
            E.ASK_FOR_BID,
            E.ASK_FOR_BID_ACCEPTED,
            E.ASK_FOR_BID_REJECTED,
            E.BID_ACCEPTED,
            E.FAILED,
            E.CANCELLED,
        }
    ),
    E.ASK_FOR_BID: frozenset(
        {E.ASK_FOR_BID_ACCEPTED, E.ASK_FOR_BID_REJECTED, E.BID_ACCEPTED, E.FAILED, E.CANCELLED}
    ),
    E.ASK_FOR_BID_ACCEPTED: frozenset({E.BID_ACCEPTED, E.BID_REJECTED, E.FAILED, E.CANCELLED}),
    E.BID_ACCEPTED: frozenset({E.RUNNING, E.PUBLISHING, E.COMPLETED, E.FAILED, E.CANCELLED}),
    E.RUNNING: frozenset({E.PUBLISHING, E.COMPLETED, E.FAILED, E.CANCELLED}),
    E.PUBLISHING: frozenset({E.COMPLETED, E.FAILED, E.CANCELLED}),
    E.ASK_FOR_BID_REJECTED: frozenset(),
    E.BID_REJECTED: frozenset(),
    # The verifier's verdict (see VERDICT_TRANSITIONS) and a lost node's late result (see
    # LATE_RESULT_TRANSITIONS) are the only exits of terminal states.
    E.COMPLETED: frozenset({E.FAILED}),
    E.FAILED: frozenset({E.COMPLETED}),
    E.CANCELLED: frozenset(),
}

#: The only exits from terminal execution states: a verified job's replica that completed
#: but whose results disagree with the accepted ones fails verification. Nothing runs any
#: more either way; only the scheduler's verification plan makes this move (callbacks
#: expect non-terminal states, so a late report never does).
VERDICT_TRANSITIONS: dict[ExecutionStateType, frozenset[ExecutionStateType]] = {
    E.COMPLETED: frozenset({E.FAILED}),
}

#: The other exit: an execution the requester failed because its node was declared lost
#: (``NodeLost``), whose node then reports it completed after all (a partition healed, a
#: stall ended) while the job still needs that partition. The node did the work; keeping its
#: result ends the job sooner than waiting for the replacement, which is stopped as surplus.
#: Only the requester's callbacks make this move, and only for such executions.
LATE_RESULT_TRANSITIONS: dict[ExecutionStateType, frozenset[ExecutionStateType]] = {
    E.FAILED: frozenset({E.COMPLETED}),
}

#: Allowed desired-state transitions (desired state only ever moves forward).
DESIRED_TRANSITIONS: dict[ExecutionDesiredStateType, frozenset[ExecutionDesiredStateType]] = {
    D.PENDING: frozenset({D.RUNNING, D.STOPPED}),
    D.RUNNING: frozenset({D.STOPPED}),
    D.STOPPED: frozenset(),
}

#: Allowed transitions in a compute node's execution store.
LOCAL_TRANSITIONS: dict[LocalExecutionState, frozenset[LocalExecutionState]] = {
    L.CREATED: frozenset({L.BID_ACCEPTED, L.BID_REJECTED, L.FAILED, L.CANCELLED}),
    L.BID_ACCEPTED: frozenset({L.RUNNING, L.FAILED, L.CANCELLED}),
    L.RUNNING: frozenset({L.PUBLISHING, L.COMPLETED, L.FAILED, L.CANCELLED}),
    L.PUBLISHING: frozenset({L.COMPLETED, L.FAILED, L.CANCELLED}),
    L.COMPLETED: frozenset(),
    L.FAILED: frozenset(),
    L.CANCELLED: frozenset(),
    L.BID_REJECTED: frozenset(),
}


def check_job_transition(old: JobStateType, new: JobStateType) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is in the job table."""
    if old != new and new not in JOB_TRANSITIONS[old]:
        raise InvalidTransition(f"job cannot go from {old.wire} to {new.wire}")


def check_execution_transition(old: ExecutionStateType, new: ExecutionStateType) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is in the execution table."""
    if old != new and new not in EXECUTION_TRANSITIONS[old]:
        raise InvalidTransition(f"execution cannot go from {old.label} to {new.label}")


def check_desired_transition(
    old: ExecutionDesiredStateType, new: ExecutionDesiredStateType
) -> None:
    if old != new and new not in DESIRED_TRANSITIONS[old]:
        raise InvalidTransition(f"desired state cannot go from {old.label} to {new.label}")


def check_local_transition(old: LocalExecutionState, new: LocalExecutionState) -> None:
    if old != new and new not in LOCAL_TRANSITIONS[old]:
        raise InvalidTransition(f"local execution cannot go from {old.value} to {new.value}")


class LivenessState(StrEnum):
    """Whether a cluster member is reachable, as one node's membership view sees it."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"

    def is_down(self) -> bool:
        """Dead or left: not probed, not given work; only a newer record brings it back."""
        return self in (LivenessState.DEAD, LivenessState.LEFT)


V = LivenessState

#: Allowed liveness transitions. Nothing is terminal for good: a dead or departed node that
#: comes back publishes a newer signed record and is alive again.
LIVENESS_TRANSITIONS: dict[LivenessState, frozenset[LivenessState]] = {
    V.ALIVE: frozenset({V.SUSPECT, V.DEAD, V.LEFT}),
    V.SUSPECT: frozenset({V.ALIVE, V.DEAD, V.LEFT}),
    V.DEAD: frozenset({V.ALIVE, V.LEFT}),
    V.LEFT: frozenset({V.ALIVE}),
}

#: Transitions only a newer record signed by the member itself may cause (a refutation of a
#: suspicion, a return from death, a rejoin): a peer's word can never make a member alive.
LIVENESS_REVIVALS: frozenset[tuple[LivenessState, LivenessState]] = frozenset(
    {(V.SUSPECT, V.ALIVE), (V.DEAD, V.ALIVE), (V.LEFT, V.ALIVE)}
)


def check_liveness_transition(
    old: LivenessState, new: LivenessState, *, newer_record: bool
) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed.

    ``newer_record`` says the change comes with a newer record signed by the member itself,
    which :data:`LIVENESS_REVIVALS` require.
    """
    if old == new:
        return
    if new not in LIVENESS_TRANSITIONS[old]:
        raise InvalidTransition(f"member cannot go from {old.value} to {new.value}")
    if (old, new) in LIVENESS_REVIVALS and not newer_record:
        raise InvalidTransition(
            f"member cannot go from {old.value} to {new.value} without a newer record of its own"
        )
