"""Why an execution failed, as events and executions carry it.

Bacalhau's events and executions describe a failure in a map of strings (``IsError``,
``ErrorCode``, ``Retryable``, ``Hint``, plus flags of our own such as ``NodeLost``). That map
is the wire format and stays one; :class:`Failure` is how code writes it and
:func:`never_retried` how code reads it, so that no ``"False"`` or misspelt key creeps in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ERROR_CODE",
    "HINT",
    "IN_THE_JOB",
    "IS_ERROR",
    "NODE_SHUTDOWN",
    "NOT_IN_CLUSTER",
    "RETRYABLE",
    "Failure",
    "never_retried",
]

IS_ERROR = "IsError"
ERROR_CODE = "ErrorCode"
RETRYABLE = "Retryable"
HINT = "Hint"
#: Flag of an execution its compute node interrupted as it shut down (an operator stopping
#: or restarting it): the job did nothing wrong, so it costs the job no attempt.
NODE_SHUTDOWN = "NodeShutdown"
#: Flag of an input that no member of the cluster holds: the node that looked asked every
#: live member, each answered, and none had it, so no other node would find it either.
NOT_IN_CLUSTER = "NotInCluster"
#: Flag of a failure the job's own spec causes wherever it runs (a WASM module importing one
#: that no input provides, an entry point its module does not export): another node would
#: fail it the same way.
IN_THE_JOB = "InTheJob"

_TRUE, _FALSE = "true", "false"


@dataclass(frozen=True, slots=True)
class Failure:
    """A coded failure: its error code, whether another attempt may cure it, the hint for the
    user, and flags set to ``"true"`` (such as ``NodeLost``, ``Unreached``) that say how it
    came about."""

    code: str
    retryable: bool
    hint: str = ""
    flags: tuple[str, ...] = ()

    def details(self, *, error: bool = True) -> dict[str, str]:
        """The details map. ``error``: mark it as an error (``IsError``), as an event that
        tells the failure is; an execution's own details leave the mark out."""
        out = {ERROR_CODE: self.code, RETRYABLE: _TRUE if self.retryable else _FALSE}
        if error:
            out[IS_ERROR] = _TRUE
        if self.hint:
            out[HINT] = self.hint
        for flag in self.flags:
            out[flag] = _TRUE
        return out


def never_retried(details: Mapping[str, str]) -> bool:
    """Whether the failure ``details`` describe rules out another attempt (on that node)."""
    return details.get(RETRYABLE) == _FALSE
