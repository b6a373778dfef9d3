"""The requester's defaults for new jobs, per job type (Bacalhau's ``JobDefaults``).

What a job leaves unset is filled from its type's defaults when it is submitted: its
priority, its task's resources, publisher (batch and ops) and timeouts (batch and ops), as
Bacalhau's ``DefaultsApplier`` does. Anything still unset after that gets the requester's
built-in defaults (CPU 500m, memory 1Gb, the ``local`` publisher).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: Bacalhau's job types, as ``JobDefaults`` spells its sections.
JOB_TYPES = ("Batch", "Ops", "Daemon", "Service")
#: Job types that run to completion: only these take a default publisher and timeouts.
COMPLETING_JOB_TYPES = ("Batch", "Ops")


@dataclass(frozen=True, slots=True)
class TaskDefaults:
    """The defaults of one job type; empty (or 0) leaves the job's value alone."""

    priority: int = 0
    cpu: str = ""
    memory: str = ""
    disk: str = ""
    gpu: str = ""
    publisher_type: str = ""
    publisher_params: Mapping[str, str] = field(default_factory=dict)
    #: Seconds; 0 sets nothing.
    execution_timeout: float = 0.0
    total_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """:class:`TaskDefaults` per job type."""

    batch: TaskDefaults = field(default_factory=TaskDefaults)
    ops: TaskDefaults = field(default_factory=TaskDefaults)
    daemon: TaskDefaults = field(default_factory=TaskDefaults)
    service: TaskDefaults = field(default_factory=TaskDefaults)

    def for_type(self, job_type: str) -> TaskDefaults | None:
        """The defaults of ``job_type`` (any case); None for a type Bacalhau does not name."""
        value = getattr(self, job_type.lower(), None) if job_type.lower() in _TYPES else None
        return value if isinstance(value, TaskDefaults) else None

    def with_value(self, job_type: str, name: str, value: Any) -> JobDefaults:
        """A copy with ``name`` (a :class:`TaskDefaults` field) of ``job_type`` replaced."""
        current = self.for_type(job_type)
        assert current is not None, job_type
        return replace(self, **{job_type.lower(): replace(current, **{name: value})})


_TYPES = frozenset(t.lower() for t in JOB_TYPES)
