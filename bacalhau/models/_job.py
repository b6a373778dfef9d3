"""The Bacalhau v1 job model, with the exact JSON spellings of the v1 wire contract.

Decoding (``from_dict``) accepts keys in any casing; encoding (``to_dict``) emits the exact
spellings and omits what Go omits when empty. No validation happens here beyond types: see
:mod:`bacalhau.models._validate`.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bacalhau.models._codec import Obj
from bacalhau.models._states import JobStateType
from bacalhau.models._task_config import (
    NetworkConfig,
    ResourcesConfig,
    TimeoutConfig,
    parse_duration,
)


def _copy_tree(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists and immutable leaves): what ``deepcopy``
    makes of it, at a fraction of the cost (no memo; every job read for an answer or a
    dispatch copies its plugin params). Other values are left to ``deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_tree(v) for k, v in value.items()}
    if kind is list:
        return [_copy_tree(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


@dataclass(slots=True)
class SpecConfig:
    """A typed plugin configuration: ``{"Type": "docker", "Params": {...}}``."""

    type: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type}
        if self.params:
            out["Params"] = _copy_tree(self.params)
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> SpecConfig:
        return cls(type=o.get_str("Type"), params=o.any_map("Params"))

    def is_empty(self) -> bool:
        return not self.type


@dataclass(slots=True)
class InputSource:
    source: SpecConfig = field(default_factory=SpecConfig)
    alias: str = ""
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Source": self.source.to_dict(), "Target": self.target}
        if self.alias:
            out["Alias"] = self.alias
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> InputSource:
        return cls(
            source=SpecConfig.from_obj(o.get_obj("Source")),
            alias=o.get_str("Alias"),
            target=o.get_str("Target"),
        )


@dataclass(slots=True)
class ResultPath:
    name: str = ""
    path: str = ""

    @property
    def folder(self) -> str:
        """The folder of the results holding this path's files: the name without leading or
        trailing slashes (Bacalhau joins the name onto the results directory, so its own
        documents' ``Name: /outputs`` is the folder ``outputs``). Validation refuses a name
        whose folder is not one plain component."""
        return self.name.strip("/")

    def to_dict(self) -> dict[str, Any]:
        return {"Name": self.name, "Path": self.path}

    @classmethod
    def from_obj(cls, o: Obj) -> ResultPath:
        return cls(name=o.get_str("Name"), path=o.get_str("Path"))


@dataclass(slots=True)
class ReschedulePolicy:
    """How the requester retries a job whose executions fail (job-level ``Reschedule``).

    An additive field in the spirit of Nomad's ``reschedule`` block; Bacalhau clients ignore
    it. Zero values mean "the operator's default". ``Attempts`` counts every failed
    execution of the job (the first try included) before it fails; ``AttemptsPerNode`` how
    many of those one node may have; ``Delay`` is the wait before the first retry, doubled
    for each further failure up to ``MaxDelay``. Durations are kept as written so the job
    reads back exactly as it was submitted.
    """

    attempts: int = 0
    attempts_per_node: int = 0
    delay: str = ""
    max_delay: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.attempts:
            out["Attempts"] = self.attempts
        if self.attempts_per_node:
            out["AttemptsPerNode"] = self.attempts_per_node
        if self.delay:
            out["Delay"] = self.delay
        if self.max_delay:
            out["MaxDelay"] = self.max_delay
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> ReschedulePolicy:
        return cls(
            attempts=o.get_int("Attempts"),
            attempts_per_node=o.get_int("AttemptsPerNode"),
            delay=o.get_str("Delay"),
            max_delay=o.get_str("MaxDelay"),
        )

    def is_empty(self) -> bool:
        return not (self.attempts or self.attempts_per_node or self.delay or self.max_delay)

    def delay_seconds(self) -> float | None:
        """``Delay`` in seconds, or None when unset."""
        return parse_duration(self.delay, field="Reschedule.Delay") if self.delay else None

    def max_delay_seconds(self) -> float | None:
        """``MaxDelay`` in seconds, or None when unset."""
        if not self.max_delay:
            return None
        return parse_duration(self.max_delay, field="Reschedule.MaxDelay")


#: Verification modes a job may ask for: ``majority`` accepts the results (by CID) that a
#: strict majority of the job's replicas agree on.
VERIFICATION_MODES = ("majority",)
#: System meta key telling compute nodes that a job is verified (the bprotocol job carries
#: meta, not our top-level fields): its value is the mode.
VERIFICATION_META_KEY = "bacalhau.org/verification"


@dataclass(slots=True)
class VerificationPolicy:
    """A job's ``Verification`` block (ours; Bacalhau clients ignore it): ``{"Mode":
    "majority"}`` runs ``Count`` replicas of the job on distinct nodes and accepts the results
    a strict majority of them agree on. Empty: the job is not verified."""

    mode: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"Mode": self.mode} if self.mode else {}

    @classmethod
    def from_obj(cls, o: Obj) -> VerificationPolicy:
        return cls(mode=o.get_str("Mode"))

    def is_empty(self) -> bool:
        return not self.mode


@dataclass(slots=True)
class LabelSelectorRequirement:
    key: str = ""
    operator: str = ""
    values: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Key": self.key, "Operator": self.operator}
        if self.values:
            out["Values"] = list(self.values)
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> LabelSelectorRequirement:
        return cls(
            key=o.get_str("Key"), operator=o.get_str("Operator"), values=o.str_list("Values")
        )


@dataclass(slots=True)
class State:
    """``{"StateType", "Message"?, "Details"?}``; the state type is typed by the owner."""

    state_type: Any = 0
    message: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    name: str = ""
    engine: SpecConfig = field(default_factory=SpecConfig)
    publisher: SpecConfig = field(default_factory=SpecConfig)
    env: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    input_sources: list[InputSource] = field(default_factory=list)
    result_paths: list[ResultPath] = field(default_factory=list)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Name": self.name,
            "Engine": self.engine.to_dict(),
            "Publisher": self.publisher.to_dict(),
        }
        if self.env:
            out["Env"] = dict(self.env)
        if self.meta:
            out["Meta"] = dict(self.meta)
        if self.input_sources:
            out["InputSources"] = [i.to_dict() for i in self.input_sources]
        if self.result_paths:
            out["ResultPaths"] = [r.to_dict() for r in self.result_paths]
        if not self.resources.is_empty():
            out["Resources"] = self.resources.to_dict()
        out["Network"] = self.network.to_dict()
        if not self.timeouts.is_empty():
            out["Timeouts"] = self.timeouts.to_dict()
        return out

    @classmethod
    def from_obj(cls, o: Obj) -> Task:
        return cls(
            name=o.get_str("Name"),
            engine=SpecConfig.from_obj(o.get_obj("Engine")),
            publisher=SpecConfig.from_obj(o.get_obj("Publisher")),
            env=o.str_map("Env"),
            meta=o.str_map("Meta"),
            input_sources=[
                InputSource.from_obj(Obj(item, f"{o.sub('InputSources')}[{i}]"))
                for i, item in enumerate(o.get_list("InputSources"))
            ],
            result_paths=[
                ResultPath.from_obj(Obj(item, f"{o.sub('ResultPaths')}[{i}]"))
                for i, item in enumerate(o.get_list("ResultPaths"))
            ],
            resources=ResourcesConfig.from_obj(o.get_obj("Resources")),
            network=NetworkConfig.from_obj(o.get_obj("Network")),
            timeouts=TimeoutConfig.from_obj(o.get_obj("Timeouts")),
        )

    def runs_deterministically(self, *, verification_requested: bool = False) -> bool:
        """Whether this task must run deterministically (WASM only: fixed clocks, seeded
        random bytes; see the wasm executor).

        The engine's ``Deterministic`` param decides when it is set (true or false); otherwise a
        job that asks for its results to be verified runs deterministically, since only such a
        run gives the same bytes on every node. The orchestrator decides with this and writes
        the answer into the engine params before it dispatches the job.
        """
        if self.engine.type.lower() != "wasm":
            return False
        params = Obj(self.engine.params, "Engine.Params")
        if params.has(WASM_DETERMINISTIC_PARAM):
            return params.get_bool(WASM_DETERMINISTIC_PARAM)
        return verification_requested


JOB_TYPES = ("batch", "ops", "daemon", "service")
#: A ``Task.Env`` value of the form ``env:NAME`` is filled from the compute node's own
#: environment (Bacalhau v1.7+), when the node's operator allows ``NAME``.
ENV_REFERENCE_PREFIX = "env:"


def forwarded_env_name(value: str) -> str | None:
    """The host variable an ``Env`` value forwards (``"env:HOME"`` -> ``"HOME"``), or None
    for a literal value."""
    if not value.startswith(ENV_REFERENCE_PREFIX):
        return None
    return value[len(ENV_REFERENCE_PREFIX) :]


def env_name_allowed(name: str, allow_list: Iterable[str]) -> bool:
    """Whether a host variable ``name`` matches one of an operator's ``Compute.Env.AllowList``
    patterns (shell-style wildcards, case-sensitive: ``AWS_*``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in allow_list)


#: The WASM engine param asking for a deterministic run (read by the wasm executor too).
WASM_DETERMINISTIC_PARAM = "Deterministic"
#: The ``Meta`` stamp of a later version of a job (an update, a rerun): when it was made, in
#: Unix ns. The version's TotalTimeout and QueueTimeout count from it (see
#: :meth:`Job.started_ns`).
VERSION_START_META = "bacalhau.org/version.startTime"


@dataclass(slots=True)
class Job:
    id: str = ""
    name: str = ""
    namespace: str = ""
    type: str = ""
    priority: int = 0
    count: int = 0
    constraints: list[LabelSelectorRequirement] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    #: Our retry policy (not part of Bacalhau v1; its clients ignore it). Empty: defaults.
    reschedule: ReschedulePolicy = field(default_factory=ReschedulePolicy)
    #: Our result verification (not part of Bacalhau v1). Empty: not verified.
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)
    state: JobStateType = JobStateType.UNDEFINED
    state_message: str = ""
    state_details: dict[str, str] = field(default_factory=dict)
    version: int = 0
    revision: int = 0
    create_time: int = 0
    modify_time: int = 0

    @property
    def task(self) -> Task:
        """The one task a job runs (Bacalhau v1 runs exactly one)."""
        return self.tasks[0]

    @property
    def verified(self) -> bool:
        """Whether the job's results are verified: its ``Verification`` block, or (on a
        compute node, which receives the job without it) the system meta key."""
        return not self.verification.is_empty() or VERIFICATION_META_KEY in self.meta

    @property
    def partition_count(self) -> int:
        """How many partitions the work is split into: ``Count`` for a batch or service job,
        but 1 for a verified one, whose executions are replicas of the same work, and for
        ops and daemon jobs, which run all of it on every node they match (as Bacalhau,
        partitioning is for batch and service jobs)."""
        if self.verified or self.type in ("ops", "daemon"):
            return 1
        return max(self.count, 1)

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"StateType": self.state.wire}
        if self.state_message:
            state["Message"] = self.state_message
        if self.state_details:
            state["Details"] = dict(self.state_details)
        return {
            "ID": self.id,
            "Name": self.name,
            "Namespace": self.namespace,
            "Type": self.type,
            "Priority": self.priority,
            "Count": self.count,
            "Constraints": [c.to_dict() for c in self.constraints],
            "Meta": dict(self.meta),
            "Labels": dict(self.labels),
            "Tasks": [t.to_dict() for t in self.tasks],
            **({"Reschedule": self.reschedule.to_dict()} if not self.reschedule.is_empty() else {}),
            **(
                {"Verification": self.verification.to_dict()}
                if not self.verification.is_empty()
                else {}
            ),
            "State": state,
            "Version": self.version,
            "Revision": self.revision,
            "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        }

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "") -> Job:
        o = Obj(data, path)
        state_obj = o.get_obj("State")
        raw_state = state_obj.raw("StateType")
        return cls(
            id=o.get_str("ID"),
            name=o.get_str("Name"),
            namespace=o.get_str("Namespace"),
            type=o.get_str("Type"),
            priority=o.get_int("Priority"),
            count=o.get_int("Count"),
            constraints=[
                LabelSelectorRequirement.from_obj(Obj(item, f"{o.sub('Constraints')}[{i}]"))
                for i, item in enumerate(o.get_list("Constraints"))
            ],
            meta=o.str_map("Meta"),
            labels=o.str_map("Labels"),
            tasks=[
                Task.from_obj(Obj(item, f"{o.sub('Tasks')}[{i}]"))
                for i, item in enumerate(o.get_list("Tasks"))
            ],
            reschedule=ReschedulePolicy.from_obj(o.get_obj("Reschedule")),
            verification=VerificationPolicy.from_obj(o.get_obj("Verification")),
            state=JobStateType.UNDEFINED
            if raw_state in (None, "")
            else JobStateType.parse(raw_state),
            state_message=state_obj.get_str("Message"),
            state_details=state_obj.str_map("Details"),
            version=o.get_int("Version"),
            revision=o.get_int("Revision"),
            create_time=o.get_int("CreateTime"),
            modify_time=o.get_int("ModifyTime"),
        )

    def copy(self) -> Job:
        return copy.deepcopy(self)

    def started_ns(self) -> int:
        """When this version of the job began (Unix ns): the job's creation, or when a
        later version (an update, a rerun) was made. Its TotalTimeout and QueueTimeout count
        from here, so that a new version of an old job gets its whole time."""
        stamp = self.meta.get(VERSION_START_META, "")
        return int(stamp) if stamp.isdigit() else self.create_time
