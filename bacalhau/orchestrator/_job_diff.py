"""What changes when a job is submitted again under its name: the comparison that decides
whether the submission changes anything, and the diff a user reads before submitting
(``PUT /jobs/diff``, ``job run --dry-run``).

Both sides are compared as the store keeps them, after the normalisation and defaults a
submission gets, and without what the server owns or stamps (as Bacalhau's
``Job.CompareWith``): the ID, state, version, revision and times, and the ``Meta`` keys under
``bacalhau.org`` (the requester's and the client's IDs). Resource quantities compare without
regard to case (``1Gb`` is ``1gb``). Pure functions: no I/O.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

import yaml

from bacalhau.models import Job

__all__ = ["comparable_spec", "same_spec", "spec_diff"]

#: Keys of a job's wire form the server owns: never part of a comparison.
_SERVER_OWNED = ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")
#: Meta keys under this prefix are stamped by the server (Bacalhau's reserved prefix).
_STAMPED_META = "bacalhau.org"
#: Strings longer than this that are ``data:`` URLs (inline modules, tens of KB) are shown
#: in a diff by their size and hash: one changed byte would otherwise print the whole of it.
_LONG_DATA_URL = 120


def comparable_spec(job: Job) -> dict[str, Any]:
    """``job``'s wire form as compared: without the server's fields and stamps, resource
    quantities lower-cased."""
    doc = job.to_dict()
    for key in _SERVER_OWNED:
        doc.pop(key, None)
    doc["Meta"] = {k: v for k, v in doc["Meta"].items() if not k.startswith(_STAMPED_META)}
    for task in doc["Tasks"]:
        resources = task.get("Resources")
        if isinstance(resources, dict):
            task["Resources"] = {
                k: v.lower() if isinstance(v, str) else v for k, v in resources.items()
            }
    return doc


def same_spec(current: Job, submitted: Job) -> bool:
    """Whether submitting ``submitted`` over ``current`` would change nothing."""
    return comparable_spec(current) == comparable_spec(submitted)


def spec_diff(current: Job, submitted: Job) -> str:
    """A unified diff of the job's YAML from ``current`` (the stored version) to
    ``submitted``; "" when they compare equal (see :func:`comparable_spec`)."""
    before, after = comparable_spec(current), comparable_spec(submitted)
    if before == after:
        return ""
    lines = difflib.unified_diff(
        _yaml_lines(before),
        _yaml_lines(after),
        fromfile=f"{current.name} (version {current.version}, {current.id})",
        tofile=f"{submitted.name} (submitted)",
        lineterm="",
    )
    return "\n".join(lines) + "\n"


def _yaml_lines(doc: dict[str, Any]) -> list[str]:
    # YAML, as users write job files; keys in the job's own order.
    text = yaml.safe_dump(_shortened(doc), sort_keys=False, allow_unicode=True, width=100)
    return text.splitlines()


def _shortened(value: Any) -> Any:
    """``value`` with long ``data:`` URLs replaced by their size and SHA-256."""
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v) for v in value]
    if isinstance(value, str) and len(value) > _LONG_DATA_URL and value.startswith("data:"):
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        kind = value[: value.find(",")] if "," in value[:80] else value[:40]
        return f"{kind},... ({len(value)} characters, sha256 {digest}...)"
    return value
