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
class ExecutionReport:
    """Compute -> requester: the executions this node holds for the requester (under way, or
    finished with the final callback not yet delivered). The requester fails the ones it
    thinks active there that are not listed, and cancels listed ones it has stopped."""

    node_id: str
    execution_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NodeIdentityClaim:
    """What a node proved about itself at an address: its ID (by signing a fresh nonce) and
    the roles it says it runs."""

    node_id: str
    roles: frozenset[NodeType] = frozenset()

    @property
    def is_requester(self) -> bool:
        return NodeType.REQUESTER in self.roles
