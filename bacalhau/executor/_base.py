"""The executor plugin contract.

An executor runs one execution's engine spec and leaves in ``results_dir``:

- ``stdout`` and ``stderr``: the full streams,
- ``exitCode``: the decimal exit code, no newline,
- one folder per result path (``<results_dir>/<ResultPath.Name>``) holding what the job wrote.

It returns a :class:`~bacalhau.models.RunCommandResult` whose ``Stdout``/``stderr`` are the first
2048 bytes. A non-zero exit code is *not* an error (Bacalhau semantics); a run that could not
happen (image missing, entry point missing, OOM, trap) raises a
:class:`~bacalhau.errors.ExecutionFailed` subclass or returns ``error_msg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from bacalhau.executor._gpus import GPU
from bacalhau.models import NetworkConfig, Resources, ResultPath, RunCommandResult, SpecConfig


@dataclass(frozen=True, slots=True)
class InputMount:
    """A prepared input: a host file or directory shown to the workload at ``target``."""

    source: Path
    target: str
    read_only: bool = True
    #: The input source's ``Alias``: WASM imports of a module by this name resolve to it.
    alias: str = ""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything an executor needs to run one execution."""

    execution_id: str
    job_id: str
    engine: SpecConfig
    results_dir: Path
    result_paths: list[ResultPath] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    #: Extra environment (Task.Env); engine-specific env params are applied on top.
    env: dict[str, str] = field(default_factory=dict)
    #: Seconds; None = no limit. The executor must stop the workload when it expires.
    timeout: float | None = None
    #: Inputs already prepared on this node (by the storage plugins), mounted at their targets.
    inputs: list[InputMount] = field(default_factory=list)
    #: The GPUs reserved for this execution on this node (given to the workload, and no other).
    gpus: tuple[GPU, ...] = ()


@runtime_checkable
class Executor(Protocol):
    """A way of running workloads (``docker``, ``wasm``, ``noop``)."""

    @property
    def name(self) -> str: ...

    async def is_installed(self) -> bool:
        """Whether this executor can run anything on this node right now."""
        ...

    async def validate(self, engine: SpecConfig) -> None:
        """Raise :class:`~bacalhau.errors.InvalidJobSpec` if this node can never run ``engine``."""
        ...

    async def run(self, request: RunRequest) -> RunCommandResult:
        """Run to completion and write the results layout into ``request.results_dir``."""
        ...

    async def cancel(self, execution_id: str) -> None:
        """Stop a running execution and release its resources (idempotent).

        A ``run()`` still waiting for that execution raises
        :class:`~bacalhau.errors.ExecutionCancelled` promptly.
        """
        ...
