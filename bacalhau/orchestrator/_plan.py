"""Plans: what a scheduler decided, to be applied atomically by the planner."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from bacalhau.models import (
    Evaluation,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
)


@dataclass(slots=True)
class ExecutionChange:
    """A change the scheduler wants for an existing execution."""

    execution_id: str
    desired_state: ExecutionDesiredStateType | None = None
    desired_message: str = ""
    #: Set when the scheduler itself decides the observed outcome (e.g. a lost node).
    compute_state: ExecutionStateType | None = None
    compute_message: str = ""
    #: Event details worth keeping on the execution (ErrorCode, Retryable), set with
    #: ``compute_state``.
    compute_details: dict[str, str] = field(default_factory=dict)
    #: Tell the compute node to stop the execution even though the scheduler already
    #: decided its outcome (an overdue execution: the node may still be running it).
    cancel_on_node: bool = False
    event: Event | None = None


@dataclass(slots=True)
class Plan:
    """The outcome of one evaluation; pure data, no I/O."""

    job: Job
    evaluation: Evaluation
    new_job_state: JobStateType | None = None
    job_message: str = ""
    job_event: Event | None = None
    new_executions: list[Execution] = field(default_factory=list)
    changes: list[ExecutionChange] = field(default_factory=list)
    new_evaluations: list[Evaluation] = field(default_factory=list)
    #: The verifier's verdict per node (True: its results agreed with the accepted ones),
    #: added to the nodes' reputation with the plan.
    reputation: dict[str, bool] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            self.new_job_state is None
            and not self.new_executions
            and not self.changes
            and not self.new_evaluations
        )


def records_only_job_state(plan: Plan, states: Collection[JobStateType]) -> bool:
    """Whether ``plan`` does no more than move its job to one of ``states`` (or nothing at
    all): no execution to create, change or tell a node about, no later evaluation, no
    verdict."""
    return (
        not plan.new_executions
        and not plan.changes
        and not plan.new_evaluations
        and not plan.reputation
        and (plan.new_job_state is None or plan.new_job_state in states)
    )
