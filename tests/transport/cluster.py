"""Real nodes for transport tests: a cluster CA, node identities with certificates, and
handlers that implement the transport's handler protocols by recording what they receive."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bacalhau.errors import BacalhauError
from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ExecutionReport,
    RunResult,
)


@dataclass
class Node:
    identity: NodeIdentity
    files: NodeFiles

    @property
    def node_id(self) -> str:
        return self.identity.node_id


class Cluster:
    """One cluster CA and the nodes it certified, all under one temporary directory."""

    def __init__(self, root: Path, name: str = "cluster") -> None:
        self.root = root / name
        self.ca = ClusterCA.create(self.root / "ca")
        self._count = 0

    def node(self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Node:
        self._count += 1
        identity = NodeIdentity.load_or_create(self.root / f"node{self._count}")
        files = self.ca.issue_node_certificate(identity, hosts=hosts)
        return Node(identity, files)

    def trust_other_ca(self, node: Node, other: Cluster) -> None:
        """Make ``node`` trust ``other``'s CA (it keeps its own certificate)."""
        shutil.copy(other.root / "ca" / "ca.crt", node.files.ca_cert)


@dataclass
class RecordingCompute:
    """A ComputeHandler that records each call as (method, source node ID, message)."""

    calls: list[tuple[str, str, object]] = field(default_factory=list)
    fail_with: BaseException | None = None
    #: What ``withdraw_queued`` answers, by execution ID (None, the default: withdrawn).
    withdraw_answers: dict[str, str | None] = field(default_factory=dict)

    def _record(self, method: str, source: str, message: object) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if isinstance(message, AskForBidRequest):
            # Both ends read this machine's clock: the offset measured is the call's delay.
            assert 0 <= message.clock_offset_ns < 1_000_000_000
            message = replace(message, clock_offset_ns=0)
        self.calls.append((method, source, message))

    async def ask_for_bid(self, source_node_id: str, request: AskForBidRequest) -> None:
        self._record("ask_for_bid", source_node_id, request)

    async def bid_accepted(self, source_node_id: str, decision: BidDecision) -> None:
        self._record("bid_accepted", source_node_id, decision)

    async def bid_rejected(self, source_node_id: str, decision: BidDecision) -> None:
        self._record("bid_rejected", source_node_id, decision)

    async def cancel_execution(self, source_node_id: str, request: CancelExecutionRequest) -> None:
        self._record("cancel_execution", source_node_id, request)

    async def withdraw_queued(
        self, source_node_id: str, request: CancelExecutionRequest
    ) -> str | None:
        self._record("withdraw_queued", source_node_id, request)
        return self.withdraw_answers.get(request.execution_id)


@dataclass
class RecordingOrchestrator:
    """An OrchestratorHandler that records each call as (method, message)."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    fail_with: BacalhauError | None = None
    #: Execution ID -> the error a batch's item about it is refused with.
    refuse: dict[str, BacalhauError] = field(default_factory=dict)

    def _record(self, method: str, message: object) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((method, message))

    async def on_bid_complete(self, result: BidResult) -> None:
        self._record("on_bid_complete", result)

    async def on_run_complete(self, result: RunResult) -> None:
        self._record("on_run_complete", result)

    async def on_compute_failure(self, failure: ComputeFailure) -> None:
        self._record("on_compute_failure", failure)

    async def on_callbacks(
        self, callbacks: Sequence[BidResult | RunResult | ComputeFailure]
    ) -> list[BaseException | None]:
        """Records the batch; refuses the items of executions in ``refuse``."""
        self._record("on_callbacks", list(callbacks))
        return [self.refuse.get(c.execution_id) for c in callbacks]

    async def report_executions(self, report: ExecutionReport) -> None:
        self._record("report_executions", report)
