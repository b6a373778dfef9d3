"""Node records: what a member says about itself, versioned and signed by its own key.

A record travels as a :class:`SignedRecord`: the record serialized by a :class:`RecordCodec`
(the transport's protobuf codec on the wire), the member's ed25519 signature over it, and two
unsigned hints (node ID and version) that let a receiver drop records it already has without
decoding or verifying anything. The hints are checked against the signed content before a
record is used.

The signature covers exactly what :class:`SignedPayload` in ``types.proto`` specifies::

    b"bacalhau.v1.signed\\x00" + <codec type name> + b"\\x00" + <payload>

so a signed record is a standard signed envelope, and a signature for another message type
can never pass as a record.

Versions only grow: a node starts at its start time in nanoseconds and adds one per change,
so a restarted node's records supersede those of its previous life. The version doubles as
the SWIM incarnation number: a member refutes a suspicion by publishing a newer record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bacalhau.errors import BacalhauError, InvalidRequest
from bacalhau.identity import NodeIdentity, verify
from bacalhau.models import ComputeNodeInfo, NodeInfo, NodeType, Resources

_DOMAIN = b"bacalhau.v1.signed\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """What a node tells the cluster about itself. Treat as immutable; derive with replace()."""

    node_id: str
    #: Grows with every change (start time in ns, then +1): newer always wins.
    version: int
    roles: frozenset[NodeType] = frozenset()
    #: ``host:port`` of the node's gRPC server (bprotocol and membership).
    grpc_address: str = ""
    #: ``host:port`` of its REST API, if it serves one.
    api_address: str = ""
    #: ``host:port`` of its local publisher's file server, if any.
    publisher_address: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    engines: tuple[str, ...] = ()
    input_sources: tuple[str, ...] = ()
    publishers: tuple[str, ...] = ()
    total_capacity: Resources = field(default_factory=Resources)
    available_capacity: Resources = field(default_factory=Resources)
    queued_capacity: Resources = field(default_factory=Resources)
    running_executions: int = 0
    enqueued_executions: int = 0
    software_version: str = ""
    #: Free-form health summary from the node itself ("healthy", or what is wrong).
    health: str = "healthy"
    #: Set in the last record a node publishes before it leaves on purpose.
    leaving: bool = False
    #: Root CIDs of content the node holds pinned -> size of each DAG in bytes, a bounded
    #: number of them (data locality: the scheduler prefers nodes holding a job's inputs).
    held_roots: Mapping[str, int] = field(default_factory=dict)
    #: The operator's ``Compute.Env.AllowList`` patterns (host variables the node forwards
    #: to ``env:NAME`` references), so a requester can refuse a job no node would run.
    env_allow_list: tuple[str, ...] = ()

    @classmethod
    def from_node_info(
        cls,
        info: NodeInfo,
        *,
        version: int,
        roles: frozenset[NodeType] | None = None,
        api_address: str = "",
        publisher_address: str = "",
    ) -> NodeRecord:
        """A record describing what ``info`` says (roles default to its node type)."""
        compute = info.compute
        fields: dict[str, Any] = {}
        if compute is not None:
            fields = {
                "engines": tuple(compute.execution_engines),
                "input_sources": tuple(compute.storage_sources),
                "publishers": tuple(compute.publishers),
                "total_capacity": compute.max_capacity,
                "available_capacity": compute.available_capacity,
                "queued_capacity": compute.queue_capacity,
                "running_executions": compute.running_executions,
                "enqueued_executions": compute.enqueued_executions,
                "env_allow_list": tuple(compute.env_allow_list),
            }
        return cls(
            node_id=info.node_id,
            version=version,
            roles=roles if roles is not None else frozenset({info.node_type}),
            grpc_address=info.grpc_address,
            api_address=api_address,
            publisher_address=publisher_address,
            labels=dict(info.labels),
            software_version=info.version,
            **fields,
        )

    def to_node_info(self) -> NodeInfo:
        """The record as the job model's :class:`NodeInfo` (what the scheduler ranks)."""
        compute = None
        if NodeType.COMPUTE in self.roles:
            compute = ComputeNodeInfo(
                execution_engines=list(self.engines),
                publishers=list(self.publishers),
                storage_sources=list(self.input_sources),
                max_capacity=self.total_capacity,
                queue_capacity=self.queued_capacity,
                available_capacity=self.available_capacity,
                max_job_requirements=self.total_capacity,
                running_executions=self.running_executions,
                enqueued_executions=self.enqueued_executions,
                held_roots=dict(self.held_roots),
                env_allow_list=list(self.env_allow_list),
            )
        return NodeInfo(
            node_id=self.node_id,
            node_type=NodeType.COMPUTE if compute is not None else NodeType.REQUESTER,
            labels=dict(self.labels),
            compute=compute,
            version=self.software_version,
            grpc_address=self.grpc_address,
        )


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A serialized record with its author's signature, as members pass it around."""

    #: Unsigned hints, checked against the payload once it is verified.
    node_id: str
    version: int
    payload: bytes
    signature: bytes


class RecordCodec(Protocol):
    """Turns records into bytes and back; the wire edge provides the implementation."""

    @property
    def type_name(self) -> str:
        """The payload's type name, bound into every signature (e.g. ``bacalhau.v1.X``)."""
        ...

    def encode(self, record: NodeRecord) -> bytes: ...

    def decode(self, payload: bytes) -> NodeRecord:
        """Parse a payload; raise :class:`bacalhau.errors.BacalhauError` or ValueError."""
        ...


class Rejection(StrEnum):
    """Why a received record was not applied (each kind is counted)."""

    STALE = "stale"
    BAD_SIGNATURE = "bad_signature"
    WRONG_NODE = "wrong_node"
    MALFORMED = "malformed"


def signing_input(type_name: str, payload: bytes) -> bytes:
    """The bytes a record's signature covers (the SignedPayload envelope's rule)."""
    return b"".join((_DOMAIN, type_name.encode("ascii"), b"\x00", payload))


def seal_record(identity: NodeIdentity, codec: RecordCodec, record: NodeRecord) -> SignedRecord:
    """Serialize and sign ``record``, which must be ``identity``'s own."""
    if record.node_id != identity.node_id:
        raise InvalidRequest(
            f"node {identity.node_id} cannot sign a record of {record.node_id}",
            component="Membership",
        )
    payload = codec.encode(record)
    signature = identity.sign(signing_input(codec.type_name, payload))
    return SignedRecord(record.node_id, record.version, payload, signature)


class RecordVerifier:
    """Checks signed records and decodes them.

    With ``memo`` the verdicts are remembered (keyed by the whole signed record, so nothing
    unverified can hit); a simulator shares one memo between hundreds of members so each
    record is verified once, not once per member.
    """

    __slots__ = ("_codec", "_memo")

    def __init__(
        self,
        codec: RecordCodec,
        *,
        memo: dict[SignedRecord, NodeRecord | Rejection] | None = None,
    ) -> None:
        self._codec = codec
        self._memo = memo

    @property
    def codec(self) -> RecordCodec:
        return self._codec

    def open(self, signed: SignedRecord) -> NodeRecord | Rejection:
        """The record if ``signed`` is authentic and self-consistent, else why not."""
        if self._memo is None:
            return self._open(signed)
        verdict = self._memo.get(signed)
        if verdict is None:
            verdict = self._memo[signed] = self._open(signed)
        return verdict

    def _open(self, signed: SignedRecord) -> NodeRecord | Rejection:
        try:
            verify(
                signed.node_id,
                signing_input(self._codec.type_name, signed.payload),
                signed.signature,
            )
        except BacalhauError:
            return Rejection.BAD_SIGNATURE
        try:
            record = self._codec.decode(signed.payload)
        except (BacalhauError, ValueError):
            return Rejection.MALFORMED
        if record.node_id != signed.node_id:
            # Signed by one node, about another: a node speaks only for itself.
            return Rejection.WRONG_NODE
        if record.version != signed.version:
            return Rejection.MALFORMED
        return record
