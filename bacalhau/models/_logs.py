"""An execution's output as it is streamed: chunks of stdout and stderr."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class LogStream(IntEnum):
    """Which stream a chunk belongs to; the numbers are Bacalhau's ``ExecutionLogType``."""

    STDOUT = 1
    STDERR = 2


@dataclass(frozen=True, slots=True)
class LogRequest:
    """What a follower asks of an execution's output.

    ``tail`` > 0 starts with the last ``tail`` lines of each stream instead of the beginning;
    ``follow`` keeps streaming new output until the execution ends.
    """

    execution_id: str
    follow: bool = False
    tail: int = 0


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of one stream, starting at ``offset`` in that stream's file."""

    stream: LogStream
    offset: int
    data: bytes
    timestamp_ns: int = 0
