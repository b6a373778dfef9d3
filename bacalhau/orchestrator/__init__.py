"""The requester (orchestrator) role: job store, evaluations, scheduling, dispatch."""

from bacalhau.orchestrator._api import (
    ALL_VERSIONS,
    JobDiff,
    JobPage,
    JobVersions,
    OrchestratorAPI,
    SubmitResult,
)
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._broker import EvaluationBroker
from bacalhau.orchestrator._callbacks import BidApprovalHook, ExecutionCallbacks
from bacalhau.orchestrator._hooks import (
    ApprovalChain,
    ChainDecision,
    ExecApprovalHook,
    HookDecision,
    HookVerdict,
    HttpApprovalHook,
    build_hook,
)
from bacalhau.orchestrator._nodes import NodeAddressBook, NodeDirectory
from bacalhau.orchestrator._orchestrator import ComputeClient, Orchestrator
from bacalhau.orchestrator._plan import ExecutionChange, Plan
from bacalhau.orchestrator._planner import ComputeTransport
from bacalhau.orchestrator._ranking import NodeRank, rank_nodes
from bacalhau.orchestrator._reconcile import REPORT_IN_FLIGHT
from bacalhau.orchestrator._result_check import ResultCheck, ResultChecker, ResultChecks
from bacalhau.orchestrator._retries import RetryPolicy, overdue_trigger, retry_policy
from bacalhau.orchestrator._scheduler import schedule
from bacalhau.orchestrator._settings import SchedulerSettings
from bacalhau.orchestrator._store import JobStore
from bacalhau.orchestrator._view import (
    NodeChange,
    NodeChangeKind,
    NodeObserver,
    NodeSighting,
    NodeView,
)
from bacalhau.orchestrator._waiting import queued_jobs_for_node, waiting_reason

__all__ = [
    "ALL_VERSIONS",
    "REPORT_IN_FLIGHT",
    "ApprovalChain",
    "ApprovalStore",
    "BidApprovalHook",
    "ChainDecision",
    "ComputeClient",
    "ComputeTransport",
    "EvaluationBroker",
    "ExecApprovalHook",
    "ExecutionCallbacks",
    "ExecutionChange",
    "HookDecision",
    "HookVerdict",
    "HttpApprovalHook",
    "JobDiff",
    "JobPage",
    "JobStore",
    "JobVersions",
    "NodeAddressBook",
    "NodeChange",
    "NodeChangeKind",
    "NodeDirectory",
    "NodeObserver",
    "NodeRank",
    "NodeSighting",
    "NodeView",
    "Orchestrator",
    "OrchestratorAPI",
    "Plan",
    "ResultCheck",
    "ResultChecker",
    "ResultChecks",
    "RetryPolicy",
    "SchedulerSettings",
    "SubmitResult",
    "build_hook",
    "overdue_trigger",
    "queued_jobs_for_node",
    "rank_nodes",
    "retry_policy",
    "schedule",
    "waiting_reason",
]
