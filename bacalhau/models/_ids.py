"""Identifiers: ``j-<uuid4>`` jobs, ``e-<uuid4>`` executions, plain uuid4 evaluations."""

from __future__ import annotations

import uuid


def new_job_id() -> str:
    return f"j-{uuid.uuid4()}"


def new_execution_id() -> str:
    return f"e-{uuid.uuid4()}"


def new_evaluation_id() -> str:
    return str(uuid.uuid4())


def short_id(ident: str) -> str:
    """The CLI's short form: the prefix plus the first 8 hex digits (``j-28c08f7f``)."""
    if len(ident) > 2 and ident[1] == "-" and ident[0] in "jen":
        return ident[:10]
    if ident.startswith("12D3KooW"):
        return ident[:16]
    return ident[:8]
