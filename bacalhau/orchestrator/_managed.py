"""The requester's managed bucket, as the orchestrator uses it: Bacalhau v1.8's
``s3managed`` publisher, whose results compute nodes upload through URLs the requester signs
(see :mod:`bacalhau.publisher._s3managed`, which implements it with boto3)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ManagedResultBucket"]


class ManagedResultBucket(Protocol):
    """Signs where an execution's results go in the requester's bucket."""

    def upload_url(self, job_id: str, execution_id: str) -> str:
        """A URL taking one PUT of the execution's results archive, for a while."""
        ...
