"""The executions an execution store keeps decoded, so a read need not decode them again.

An execution's document (with its job) never changes once stored, and decoding it is most of
the cost of a read: unfinished ones are kept decoded, by ID, with their size, oldest first
out. With each is kept its latest record (state columns included) as the store last wrote or
read it, so a read of an unfinished execution needs no query at all. Records are values: the
store replaces them, nobody changes one in place.
"""

from __future__ import annotations

from bacalhau.compute._store_rows import LocalExecution
from bacalhau.models import Execution

__all__ = ["ExecutionMemo"]

#: How many executions are kept decoded, and how many bytes of stored document (inline
#: module included) at most: well above what a node has under way at once, so the reads of
#: one execution's run all hit, without holding on to large modules.
_DECODED_LIMIT = 1024
_DECODED_BYTES = 32 * 2**20


class ExecutionMemo:
    """Execution ID -> the decoded execution and its latest record, within a count and a
    byte budget."""

    def __init__(self) -> None:
        self._decoded: dict[str, tuple[Execution, int]] = {}
        self._decoded_bytes = 0
        self._records: dict[str, LocalExecution] = {}

    def get(self, execution_id: str) -> Execution | None:
        """The decoded execution, if kept."""
        decoded = self._decoded.get(execution_id)
        return decoded[0] if decoded is not None else None

    def record(self, execution_id: str) -> LocalExecution | None:
        """The execution's latest record, if kept."""
        return self._records.get(execution_id)

    def remember(
        self, execution: Execution, size: int, record: LocalExecution | None = None
    ) -> None:
        """Keep ``execution`` (``size``: its stored bytes) and, if given, its latest record,
        dropping the oldest over budget."""
        if size > _DECODED_BYTES // 16:
            return  # a large inline module: read from the store each time rather than held
        self.forget(execution.id)
        self._decoded[execution.id] = (execution, size)
        self._decoded_bytes += size
        if record is not None:
            self._records[execution.id] = record
        while len(self._decoded) > _DECODED_LIMIT or self._decoded_bytes > _DECODED_BYTES:
            self.forget(next(iter(self._decoded)))

    def update(self, record: LocalExecution) -> None:
        """Keep ``record`` as the execution's latest (if the execution is kept)."""
        if record.id in self._decoded:
            self._records[record.id] = record

    def forget(self, execution_id: str) -> None:
        """Drop an execution, if kept."""
        dropped = self._decoded.pop(execution_id, None)
        self._records.pop(execution_id, None)
        if dropped is not None:
            self._decoded_bytes -= dropped[1]

    def forget_records(self) -> None:
        """Drop every record (the decoded executions stay): after a write that failed, the
        store may hold less than the records say."""
        self._records.clear()
