"""The bprotocol messages as domain types.

Transport turns these into protobuf (and signs/verifies the ones a node vouches for: bids,
run results, failures); orchestrator and compute only ever see these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bacalhau.models._execution import Event, Execution, RunCommandResult
from bacalhau.models._job import SpecConfig
from bacalhau.models._node import NodeInfo
from bacalhau.models._resources import Resources


@dataclass(slots=True)
class AskForBidRequest:
    """Requester -> compute: would you run this execution? ``execution.job`` is set."""

    execution: Execution
    wait_for_approval: bool = True


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


@dataclass(slots=True)
class ComputeFailure:
    """Compute -> requester (OnComputeFailure). ``event.details`` carries ErrorCode, Hint,
    Retryable and FailsExecution."""

    execution_id: str
    job_id: str
    node_id: str
    event: Event


@dataclass(slots=True)
class Heartbeat:
    """Compute -> requester: I am alive, and this is my free capacity."""

    node_id: str
    sequence: int
    available_capacity: Resources = field(default_factory=Resources)
    queue_used_capacity: Resources = field(default_factory=Resources)
    running_executions: int = 0
    enqueued_executions: int = 0


@dataclass(slots=True)
class JoinRequest:
    """Compute -> requester: register (or re-register) this node."""

    info: NodeInfo
    #: Executions the node still runs or has unreported results for (None: not reported).
    #: A requester fails the executions it thinks active there that are not listed, and
    #: cancels listed ones it has stopped meanwhile.
    executions: list[str] | None = None


@dataclass(slots=True)
class JoinResponse:
    accepted: bool
    reason: str = ""
    #: How often the requester wants heartbeats, in seconds.
    heartbeat_interval: float = 5.0
