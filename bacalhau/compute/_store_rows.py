"""A local execution as the compute node's store keeps it, and how its row is read and written.

An execution's document (with its job) is written once; what changes afterwards are its
state columns (``STATE_COLUMNS``), read back into a :class:`LocalExecution` by
:func:`record_of`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bacalhau._json import dumps_text
from bacalhau.errors import InternalError
from bacalhau.models import (
    Execution,
    Job,
    LocalExecutionState,
    RunCommandResult,
    SpecConfig,
    set_entry_module_url,
)

__all__ = [
    "COLUMNS",
    "SELECT",
    "STATE_COLUMNS",
    "TERMINAL",
    "LocalExecution",
    "decode_row",
    "dump_output",
    "dump_spec",
    "record_of",
]

#: The stored values of the terminal states.
TERMINAL = tuple(s.value for s in LocalExecutionState if s.is_terminal())
COLUMNS = (
    "id, job_id, requester_id, state, revision, message, execution, published_result, "
    "run_output, create_time, modify_time"
)
#: A stored execution, with its inline module (if kept apart) to put back into its job.
SELECT = (
    f"SELECT {COLUMNS}, modules.data FROM executions"
    " LEFT JOIN modules ON modules.hash = executions.module"
)
#: What changes after an execution is created: everything but its document.
STATE_COLUMNS = (
    "requester_id, state, revision, message, published_result, run_output, create_time, modify_time"
)


@dataclass(slots=True)
class LocalExecution:
    """One execution as this compute node knows it."""

    execution: Execution
    requester_id: str
    state: LocalExecutionState
    revision: int = 1
    message: str = ""
    published_result: SpecConfig | None = None
    run_output: RunCommandResult | None = None
    create_time: int = 0
    modify_time: int = 0

    @property
    def id(self) -> str:
        return self.execution.id

    @property
    def job_id(self) -> str:
        return self.execution.job_id

    @property
    def job(self) -> Job:
        job = self.execution.job
        if job is None:  # the store refuses executions without their job
            raise InternalError(f"execution {self.id} has no job")
        return job


def dump_spec(spec: SpecConfig | None) -> str | None:
    """The ``published_result`` column of ``spec``."""
    return dumps_text(spec.to_dict()) if spec is not None else None


def _load_spec(text: str) -> SpecConfig:
    data = json.loads(text)
    return SpecConfig(type=str(data.get("Type", "")), params=dict(data.get("Params") or {}))


def dump_output(output: RunCommandResult | None) -> str | None:
    """The ``run_output`` column of ``output``."""
    return dumps_text(output.to_dict()) if output is not None else None


def decode_row(row: tuple[object, ...]) -> LocalExecution:
    """A record from a row read with ``SELECT`` (its inline module put back into its job)."""
    body, module = row[6], row[11]
    assert isinstance(body, str)
    doc = json.loads(body)
    if isinstance(module, str):
        set_entry_module_url(doc["Job"], module)
    return record_of(Execution.from_dict(doc, v152=True), (row[2], *row[3:6], *row[7:11]))


def record_of(execution: Execution, row: tuple[object, ...]) -> LocalExecution:
    """A record from its execution and its state columns (in ``STATE_COLUMNS`` order)."""
    requester, state, revision, message, published, output, created, modified = row
    assert isinstance(requester, str) and isinstance(message, str)
    assert isinstance(state, str) and isinstance(revision, int)
    assert isinstance(created, int) and isinstance(modified, int)
    return LocalExecution(
        execution=execution,
        requester_id=requester,
        state=LocalExecutionState(state),
        revision=revision,
        message=message,
        published_result=_load_spec(published) if isinstance(published, str) else None,
        run_output=(
            RunCommandResult.from_dict(json.loads(output)) if isinstance(output, str) else None
        ),
        create_time=created,
        modify_time=modified,
    )
