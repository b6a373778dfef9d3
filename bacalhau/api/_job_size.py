"""How large a job the APIs take: small enough that every answer carrying it fits.

A job's document comes back in answers with more around it (its state, IDs, its executions
in a submit-and-wait), and gRPC clients of other languages refuse a message over 4 MiB, the
default ``max_job_size``. So a job may take ``max_job_size`` less :data:`ANSWER_ROOM`, and
the rest is left to what comes with it. The check runs on the request's bytes as they came
(REST's body, gRPC's ``job_json``): the document a node stores and answers with is not larger
than the JSON it was read from but for a few hundred bytes of defaults and IDs (it is
written compactly, UTF-8 unescaped).
"""

from __future__ import annotations

from bacalhau.errors import RequestTooLarge

__all__ = ["ANSWER_ROOM", "check_job_size", "job_size_limit"]

#: Bytes kept, in every answer that carries a job, for what comes with it.
ANSWER_ROOM = 64 * 1024


def job_size_limit(max_job_size: int) -> int:
    """The largest job (in bytes of JSON) a node with ``max_job_size`` accepts."""
    return max_job_size - min(ANSWER_ROOM, max_job_size // 4)


def check_job_size(size: int, max_job_size: int, *, field: str) -> None:
    """Refuse a job of ``size`` bytes (in request field ``field``) that is too large for
    answers carrying it to fit in ``max_job_size``."""
    limit = job_size_limit(max_job_size)
    if size <= limit:
        return
    raise RequestTooLarge(
        f"the job is {size} bytes, more than the {limit} this node accepts (its max_job_size "
        f"of {max_job_size} bytes, less room for the answers that carry the job)",
        hint="keep large data out of the job spec (an input source, a WASM module by URL or "
        "CID), or raise the node's max_job_size setting (gRPC clients then need a receive "
        "limit as large)",
        details={"Field": field},
    )
