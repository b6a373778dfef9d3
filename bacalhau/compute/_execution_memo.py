"""The executions an execution store keeps decoded, so a read need not decode them again.

An execution's document (with its job) never changes once stored, and decoding it is most of
the cost of a read: unfinished ones are kept decoded, by ID, with their size, oldest first
out. The store reads only their state columns again.
"""

from __future__ import annotations

from bacalhau.models import Execution

__all__ = ["ExecutionMemo"]

#: How many executions are kept decoded, and how many bytes of stored document (inline
#: module included) at most: well above what a node has under way at once, so the reads of
#: one execution's run all hit, without holding on to large modules.
_DECODED_LIMIT = 1024
_DECODED_BYTES = 32 * 2**20


class ExecutionMemo:
    """Execution ID -> the decoded execution, within a count and a byte budget."""

    def __init__(self) -> None:
        self._decoded: dict[str, tuple[Execution, int]] = {}
        self._decoded_bytes = 0

    def get(self, execution_id: str) -> Execution | None:
        """The decoded execution, if kept."""
        decoded = self._decoded.get(execution_id)
        return decoded[0] if decoded is not None else None

    def remember(self, execution: Execution, size: int) -> None:
        """Keep ``execution`` (``size``: its stored bytes), dropping the oldest over budget."""
        if size > _DECODED_BYTES // 16:
            return  # a large inline module: read from the store each time rather than held
        self.forget(execution.id)
        self._decoded[execution.id] = (execution, size)
        self._decoded_bytes += size
        while len(self._decoded) > _DECODED_LIMIT or self._decoded_bytes > _DECODED_BYTES:
            self.forget(next(iter(self._decoded)))

    def forget(self, execution_id: str) -> None:
        """Drop an execution, if kept."""
        dropped = self._decoded.pop(execution_id, None)
        if dropped is not None:
            self._decoded_bytes -= dropped[1]
