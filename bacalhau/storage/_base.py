"""The input source plugin contract and what every source shares.

A source turns one ``InputSource.Source`` spec (``{"Type": "s3", "Params": {...}}``) into a
file or directory on the compute node. The caller gives it a fresh, empty directory of its
own (``dest``); a source writes nothing outside it (``localDirectory`` writes nothing at all:
it names an operator-allowed host directory to bind).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from bacalhau.errors import ExecutionFailed, InvalidJobSpec
from bacalhau.models import SpecConfig, param
from bacalhau.models._s3_partition import Partition

#: The ``Component`` of failures raised while preparing inputs (shown in job history).
COMPONENT = "Storage"


@dataclass(frozen=True, slots=True)
class PreparedPath:
    """Where a source left its input on this node, and whether the job may write to it."""

    path: Path
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """A prepared input with the mount point and alias its ``InputSource`` gives it."""

    path: Path
    target: str
    read_only: bool = True
    alias: str = ""


@runtime_checkable
class StorageSource(Protocol):
    """A way of getting input data onto a compute node (``ipfs``, ``s3``, ``urlDownload``...)."""

    @property
    def name(self) -> str:
        """The ``Source.Type`` this plugin serves, as Bacalhau spells it (``urlDownload``)."""
        ...

    async def is_installed(self) -> bool:
        """Whether this source can prepare anything on this node right now."""
        ...

    async def validate(self, spec: SpecConfig) -> None:
        """Raise a :class:`~bacalhau.errors.BacalhauError` if this node will never prepare
        ``spec`` (a malformed spec, a local path the operator did not allow). Cheap: used
        when bidding."""
        ...

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        """Materialise ``spec`` under ``dest`` (a fresh, empty directory) and say where."""
        ...


@runtime_checkable
class SizedSource(Protocol):
    """A source that can tell, before preparing an input, how many bytes it will write on
    this node: what bidding weighs against the disk the node offers a job, as Bacalhau's
    compute nodes size their input volumes."""

    async def size(self, spec: SpecConfig) -> int | None:
        """The bytes ``spec`` will take here; None when it cannot be told cheaply (content
        not here, a server that does not say). Raises the error :meth:`prepare` would when
        the input is over this node's limit for one input."""
        ...


@runtime_checkable
class PartitionedSource(Protocol):
    """A source that can give one execution of a partitioned job (``Count`` N) its share of
    the input (``s3``: Bacalhau v1.7's ``Partition``); the others give every execution all."""

    async def prepare_partition(
        self, spec: SpecConfig, dest: Path, partition: Partition
    ) -> PreparedPath:
        """:meth:`StorageSource.prepare`, for the execution that runs ``partition``."""
        ...


def input_failed(message: str, *, hint: str = "", kind: str = "") -> ExecutionFailed:
    """The error of an input that could not be prepared; ``kind`` is the source type."""
    details = {"InputSource": kind} if kind else None
    return ExecutionFailed(message, hint=hint or None, component=COMPONENT, details=details)


def str_param(spec: SpecConfig, key: str, *, required: bool = False) -> str:
    """A string param looked up case-insensitively; a missing required one names the field."""
    value = param(spec.params, key)
    if value is None or value == "":
        if required:
            raise InvalidJobSpec(f"{spec.type} input needs {key}", field=f"Source.Params.{key}")
        return ""
    if not isinstance(value, str):
        raise InvalidJobSpec(f"{key} must be a string", field=f"Source.Params.{key}")
    return value


def bool_param(spec: SpecConfig, key: str) -> bool:
    """A boolean param given as a bool or as ``"true"``/``"false"`` (Bacalhau accepts both)."""
    value = param(spec.params, key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False
