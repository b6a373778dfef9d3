"""The bprotocol messages as domain types.

Transport turns these into protobuf (and signs/verifies the ones a node vouches for: bids,
run results, failures); orchestrator and compute only ever see these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bacalhau.models._execution import Event, Execution, RunCommandResult
from bacalhau.models._job import SpecConfig
from bacalhau.models._node import NodeType


@dataclass(slots=True)
class AskForBidRequest:
    """Requester -> compute: would you run this execution? ``execution.job`` is set.

    ``answer_linger`` (seconds, pre-approved asks only; 0: off) lets the node hold its answer
    that long for the execution's callbacks and send them in it (:class:`AskAnswer`) rather
    than by later calls; ``applied_callbacks`` acknowledges callbacks earlier answers
    carried (their :attr:`AskAnswer.seqs`), which the node then forgets.

    ``clock_offset_ns``, on the receiving node: how far its clock is ahead of the sender's
    (its time of receipt minus the requester's time of sending; 0: unknown).
    """

    execution: Execution
    wait_for_approval: bool = True
    answer_linger: float = 0.0
    applied_callbacks: tuple[int, ...] = ()
    clock_offset_ns: int = 0


@dataclass(slots=True)
class BidDecision:
    """Requester -> compute: BidAccepted (``accepted``) or BidRejected."""

    execution_id: str
    accepted: bool
    justification: str = ""


@dataclass(slots=True)
class CancelExecutionRequest:
    execution_id: str
    justification: str = ""


@dataclass(slots=True)
class BidResult:
    """Compute -> requester (OnBidComplete): the node's signed answer to AskForBid."""

    execution_id: str
    job_id: str
    node_id: str
    accepted: bool
    event: Event = field(default_factory=Event)


@dataclass(slots=True)
class RunResult:
    """Compute -> requester (OnRunComplete): where the results are and what the run printed."""

    execution_id: str
    job_id: str
    node_id: str
    published_result: SpecConfig
    run_output: RunCommandResult
    #: The node's gossip record version when the execution ended (0: not said): a record of
    #: this version or older predates the end and still counts the execution.
    record_version: int = 0


@dataclass(slots=True)
class ComputeFailure:
    """Compute -> requester (OnComputeFailure). ``event.details`` carries ErrorCode, Hint,
    Retryable and FailsExecution."""

    execution_id: str
    job_id: str
    node_id: str
    event: Event
    #: As :attr:`RunResult.record_version`.
    record_version: int = 0


@dataclass(slots=True)
class AskAnswer:
    """Compute -> requester, in the answer to a pre-approved AskForBid: the execution's
    callbacks queued within the ask's linger, in order, each with the node's sequence number
    (``seqs``), acknowledged in a later ask once applied.

    ``refused`` (filled by the requester's transport) names the run results whose checks
    failed on arrival, with why: (sequence number, execution ID, reason); they are not in
    ``callbacks``.
    """

    callbacks: list[BidResult | RunResult | ComputeFailure]
    seqs: list[int]
    refused: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class ExecutionReport:
    """Compute -> requester: the executions this node holds for the requester (under way, or
    finished with the final callback not yet delivered). The requester fails the ones it
    thinks active there that are not listed, and cancels listed ones it has stopped."""

    node_id: str
    execution_ids: list[str] = field(default_factory=list)
    #: Those still waiting in the node's run queue (accepted, not started).
    queued: list[QueuedExecution] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueuedExecution:
    """An execution waiting in a compute node's run queue, and for how long (seconds) it
    had waited when the node said so."""

    execution_id: str
    waited: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeIdentityClaim:
    """What a node proved about itself at an address: its ID (by signing a fresh nonce) and
    the roles it says it runs."""

    node_id: str
    roles: frozenset[NodeType] = frozenset()

    @property
    def is_requester(self) -> bool:
        return NodeType.REQUESTER in self.roles
