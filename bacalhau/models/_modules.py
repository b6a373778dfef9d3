"""Inline WASM modules by content hash.

A WASM job usually carries its entry module inline: ``Engine.Params.EntryModule.Source`` is
``{"Type": "inline", "Params": {"URL": "data:..."}}``, tens of KB that a benchmark or a sweep
sends again with every job. Such a module is kept once, by the SHA-256 of its ``data:`` URL
(the requester's job store, a compute node's execution store), and travels from requester to
compute node as a reference: the URL becomes an RFC 6920 "named information" URI,
``ni:///sha-256;<base64url of the digest>``. A compute node that does not hold the module
fetches its ``data:`` URL once from the requester that sent the reference, checks it against
the digest and keeps it.

Only the entry module of a WASM job's first task, under Bacalhau's own key spelling, is
shared this way, and only a plain ASCII ``data:`` URL of at least :data:`MIN_SHARED_URL`
characters (a smaller one costs less to send than to fetch): exactly the modules the
requester's store keeps once, so every reference it sends can be answered.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, TypeGuard

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._job import Job, SpecConfig

#: Where the entry module's URL sits in a WASM engine's params.
ENTRY_MODULE_URL = ("EntryModule", "Source", "Params", "URL")
#: Shorter inline modules travel with the job.
MIN_SHARED_URL = 1024
_NI_PREFIX = "ni:///sha-256;"
_DIGEST_BYTES = hashlib.sha256().digest_size
_FIELD = "Tasks[0].Engine.Params.EntryModule.Source.Params.URL"


def is_shared_module_url(url: object) -> TypeGuard[str]:
    """Whether an entry module's URL is kept and sent by content hash."""
    return (
        isinstance(url, str)
        and len(url) >= MIN_SHARED_URL
        and url.startswith("data:")
        # SQLite and the wire give ASCII back character for character.
        and url.isascii()
    )


#: The digests of the modules hashed last, oldest first, up to a few MB of them: the same
#: module comes again and again (every job of a benchmark or a sweep, then its ask to a
#: compute node), and telling it equal to one seen before costs about a microsecond per
#: 40 KB where hashing it again costs about 40.
_RECENT_DIGESTS: deque[tuple[str, str]] = deque()
_RECENT_CHARS = 8 * 2**20
_RECENT_LOCK = threading.Lock()


def module_digest(url: str) -> str:
    """The content hash of a module's ``data:`` URL: its SHA-256, in hex."""
    with _RECENT_LOCK:  # stores hash modules in worker threads too
        for seen, digest in _RECENT_DIGESTS:
            # Lengths first: a module is compared whole only with one as long.
            if len(seen) == len(url) and seen == url:
                return digest
    digest = hashlib.sha256(url.encode()).hexdigest()
    if len(url) <= _RECENT_CHARS:
        with _RECENT_LOCK:
            _RECENT_DIGESTS.append((url, digest))
            while sum(len(seen) for seen, _ in _RECENT_DIGESTS) > _RECENT_CHARS:
                _RECENT_DIGESTS.popleft()
    return digest


def module_reference(digest: str) -> str:
    """The ``ni:`` URI that stands for the module whose ``data:`` URL hashes to ``digest``."""
    raw = bytes.fromhex(digest)
    return _NI_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def referenced_module_digest(url: object) -> str | None:
    """The digest (hex) an ``ni:///sha-256;...`` URL names; None for any other value.

    A malformed reference is an :class:`InvalidJobSpec`, never taken for a ``data:`` URL.
    """
    if not isinstance(url, str) or not url.startswith(_NI_PREFIX):
        return None
    encoded = url[len(_NI_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _DIGEST_BYTES or module_reference(raw.hex()) != url:
        raise InvalidJobSpec(
            f"malformed module reference {url[:80]!r}",
            hint="a module reference is ni:///sha-256; and the base64url of a SHA-256 digest",
            field=_FIELD,
        )
    return raw.hex()


def entry_module_url(job: Job) -> object:
    """The URL of a WASM job's entry module (None when the job names it another way)."""
    if not job.tasks or job.tasks[0].engine.type.lower() != "wasm":
        return None
    node: object = job.tasks[0].engine.params
    for key in ENTRY_MODULE_URL:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def engine_params_with_module_url(params: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A WASM engine's ``params`` with ``url`` as the entry module's URL. Only the path to
    the URL is copied: the rest is shared with ``params``, which are left as they were."""
    return _replaced(params, ENTRY_MODULE_URL, url)


def with_entry_module_url(job: Job, url: str) -> Job:
    """A copy of ``job`` whose entry module URL is ``url``. Only the path to the URL is
    copied: the rest is shared with ``job``, which is left as it was."""
    task = job.tasks[0]
    params = engine_params_with_module_url(task.engine.params, url)
    engine = SpecConfig(type=task.engine.type, params=params)
    return dataclasses.replace(
        job, tasks=[dataclasses.replace(task, engine=engine), *job.tasks[1:]]
    )


def set_entry_module_url(job_doc: dict[str, Any], url: str) -> None:
    """Set the entry module URL of a job's wire document (``Job.to_dict()``) in place."""
    params = job_doc["Tasks"][0]["Engine"]["Params"]
    job_doc["Tasks"][0]["Engine"]["Params"] = _replaced(params, ENTRY_MODULE_URL, url)


def _replaced(node: Mapping[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    out = dict(node)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _replaced(node[path[0]], path[1:], value)
    return out
