"""Node records: what a node is, what it can run, and whether it is reachable."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bacalhau.models._codec import Obj
from bacalhau.models._resources import Resources
from bacalhau.models._states import LivenessState
from bacalhau.models._time import rfc3339_ns


class NodeType(StrEnum):
    REQUESTER = "Requester"
    COMPUTE = "Compute"


class Membership(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class Connection(StrEnum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


def _held_roots(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}


@dataclass(slots=True)
class ComputeNodeInfo:
    execution_engines: list[str] = field(default_factory=list)
    publishers: list[str] = field(default_factory=list)
    storage_sources: list[str] = field(default_factory=list)
    max_capacity: Resources = field(default_factory=Resources)
    queue_capacity: Resources = field(default_factory=Resources)
    available_capacity: Resources = field(default_factory=Resources)
    max_job_requirements: Resources = field(default_factory=Resources)
    running_executions: int = 0
    enqueued_executions: int = 0
    #: Root CIDs of content the node holds and the size of each DAG in bytes (data
    #: locality; our extension, carried by gossip, not in Bacalhau's JSON).
    held_roots: dict[str, int] = field(default_factory=dict)
    #: The operator's ``Compute.Env.AllowList`` patterns: the host variables the node fills
    #: ``env:NAME`` references from (our extension, so a requester can refuse a job no node
    #: would run; carried by gossip and shown as ``EnvAllowList``).
    env_allow_list: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ExecutionEngines": list(self.execution_engines),
            "Publishers": list(self.publishers),
            "StorageSources": list(self.storage_sources),
            "MaxCapacity": self.max_capacity.to_dict(),
            "QueueCapacity": self.queue_capacity.to_dict(),
            "AvailableCapacity": self.available_capacity.to_dict(),
            "MaxJobRequirements": self.max_job_requirements.to_dict(),
            "RunningExecutions": self.running_executions,
            "EnqueuedExecutions": self.enqueued_executions,
        }
        if self.held_roots:
            out["HeldRoots"] = dict(self.held_roots)
        if self.env_allow_list:
            out["EnvAllowList"] = list(self.env_allow_list)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ComputeNodeInfo:
        o = Obj(data, "ComputeNodeInfo")
        return cls(
            execution_engines=o.str_list("ExecutionEngines"),
            publishers=o.str_list("Publishers"),
            storage_sources=o.str_list("StorageSources"),
            max_capacity=Resources.from_dict(o.raw("MaxCapacity")),
            queue_capacity=Resources.from_dict(o.raw("QueueCapacity")),
            available_capacity=Resources.from_dict(o.raw("AvailableCapacity")),
            max_job_requirements=Resources.from_dict(o.raw("MaxJobRequirements")),
            running_executions=o.get_int("RunningExecutions"),
            enqueued_executions=o.get_int("EnqueuedExecutions"),
            held_roots=_held_roots(o.raw("HeldRoots")),
            env_allow_list=o.str_list("EnvAllowList"),
        )


@dataclass(slots=True)
class NodeInfo:
    node_id: str
    node_type: NodeType
    labels: dict[str, str] = field(default_factory=dict)
    compute: ComputeNodeInfo | None = None
    version: str = ""
    #: Where the node's bprotocol gRPC server listens (``host:port``); our extension.
    grpc_address: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "NodeID": self.node_id,
            "NodeType": self.node_type.value,
            "Labels": dict(self.labels),
            "SupportedProtocols": ["bprotocol/v2"],
            "BacalhauVersion": {"GitVersion": self.version},
        }
        if self.compute is not None:
            out["ComputeNodeInfo"] = self.compute.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> NodeInfo:
        """A node's information as :meth:`to_dict` (or Bacalhau) writes it."""
        o = Obj(data, "NodeInfo")
        node_type = o.get_str("NodeType", NodeType.COMPUTE.value)
        compute = o.raw("ComputeNodeInfo")
        return cls(
            node_id=o.get_str("NodeID"),
            node_type=NodeType.REQUESTER if node_type.lower() == "requester" else NodeType.COMPUTE,
            labels=o.str_map("Labels"),
            compute=ComputeNodeInfo.from_dict(compute) if compute is not None else None,
            version=o.get_obj("BacalhauVersion").get_str("GitVersion"),
        )


@dataclass(frozen=True, slots=True)
class NodeReputation:
    """A requester's record of a compute node's verified results: how often its results
    agreed with the accepted ones, and how often they disagreed (our extension)."""

    agreements: int = 0
    disagreements: int = 0

    @property
    def score(self) -> float:
        """Laplace's rule of succession, (a + 1) / (a + d + 2): 0.5 for a node without a
        record, towards 1 as it agrees, towards 0 as it disagrees."""
        return (self.agreements + 1) / (self.agreements + self.disagreements + 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "Agreements": self.agreements,
            "Disagreements": self.disagreements,
            "Score": round(self.score, 4),
        }


@dataclass(slots=True)
class NodeState:
    """A node as the requester sees it: what it says about itself (``info``), the operator's
    decision (``membership``), and whether it is reachable.

    ``connection`` is Bacalhau's two-valued view (CONNECTED while the node is alive or only
    suspected, DISCONNECTED once it is dead, has left, or was declared lost); ``liveness`` is
    the gossip state it derives from, and ``last_seen_ns`` when the node was last known alive.
    """

    info: NodeInfo
    membership: Membership = Membership.APPROVED
    #: What the operator said with the decision (``node reject --message``), if anything.
    membership_message: str = ""
    connection: Connection = Connection.CONNECTED
    last_seen_ns: int = 0
    liveness: LivenessState = LivenessState.ALIVE
    #: From the node's gossip record: the roles it runs, the record's version, where it is
    #: reached ("GRPC", "API", "Publisher") and its own health summary.
    roles: tuple[NodeType, ...] = ()
    record_version: int = 0
    addresses: dict[str, str] = field(default_factory=dict)
    health: str = ""
    #: The requester's record of the node's verified results (None: not known here).
    reputation: NodeReputation | None = None
    #: Unix ns when this requester last saw the node join, come back from the dead or
    #: restart (0: not since it started). Internal: an ask that failed to reach the node
    #: before then says nothing about reaching it now. Not part of the wire form.
    back_since_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Info": self.info.to_dict(),
            "Membership": self.membership.value,
            "Connection": self.connection.value,
            # Bacalhau v1.6+ reads the connection from here (``Connection`` is deprecated
            # there): a node without it would read as the zero value, CONNECTED.
            "ConnectionState": {"Status": self.connection.value},
            "Liveness": self.liveness.value.upper(),
        }
        if self.membership_message:
            out["MembershipMessage"] = self.membership_message
        if self.last_seen_ns > 0:
            out["LastSeen"] = rfc3339_ns(self.last_seen_ns)
        if self.roles:
            out["Roles"] = [role.value for role in self.roles]
        if self.record_version:
            out["RecordVersion"] = self.record_version
        if self.addresses:
            out["Addresses"] = dict(self.addresses)
        if self.health:
            out["Health"] = self.health
        if self.reputation is not None:
            out["Reputation"] = self.reputation.to_dict()
        return out


#: A node record version that jumps by more than this comes from a new start of the node
#: (versions start at the start time in ns and grow by one per change).
RESTART_JUMP = 1_000_000


def is_new_start(before: int, after: int) -> bool:
    """Whether a node's record version going from ``before`` (0: none seen) to ``after``
    means the node started again (restarted, maybe before anyone declared it dead)."""
    return before > 0 and after - before > RESTART_JUMP
