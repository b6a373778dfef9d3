"""Inline WASM modules that arrive by reference, fetched once from the requester.

A requester sends a large inline entry module by content hash (an ``ni:///sha-256;...``
reference in place of its ``data:`` URL; see :mod:`bacalhau.models._modules`). Before bidding,
the compute node puts the module back: from its execution store when it holds it already,
else fetched from the requester that sent the ask, checked against the hash and kept. Asks
for the same module that arrive while it is being fetched wait for that one fetch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bacalhau.compute._store import ExecutionStore
from bacalhau.errors import BacalhauError, InvalidContent, NotFound, Unavailable
from bacalhau.models import (
    Job,
    entry_module_url,
    module_digest,
    referenced_module_digest,
    with_entry_module_url,
)

_log = logging.getLogger(__name__)


class ModuleSource(Protocol):
    """Where a compute node fetches modules its requesters sent by reference."""

    async def get_module(self, requester_id: str, sha256: str) -> str:
        """The ``data:`` URL ``requester_id`` named by ``sha256`` (hex), unchecked; raises
        :class:`bacalhau.errors.NotFound` when the requester has none."""
        ...


class ModuleResolver:
    """Puts back the entry module of jobs that arrived with a reference to it.

    ``fetches`` counts the modules fetched from requesters (each once, however many asks
    named it meanwhile).
    """

    def __init__(self, *, store: ExecutionStore, source: ModuleSource | None) -> None:
        self._store = store
        self._source = source
        self._fetching: dict[str, asyncio.Task[str]] = {}
        self.fetches = 0

    async def resolve(self, requester_id: str, job: Job) -> Job:
        """``job`` with its entry module's ``data:`` URL in place of a reference (``job``
        itself when it carries none).

        Raises :class:`NotFound` when the requester does not hold the module,
        :class:`InvalidContent` when what it sent does not match the hash, and
        :class:`Unavailable` when it cannot be reached.
        """
        digest = referenced_module_digest(entry_module_url(job))
        if digest is None:
            return job
        url = self._store.module(digest)
        if url is None:
            url = await self._fetch(requester_id, digest)
        return with_entry_module_url(job, url)

    async def _fetch(self, requester_id: str, digest: str) -> str:
        task = self._fetching.get(digest)
        if task is None:
            task = asyncio.create_task(
                self._fetch_once(requester_id, digest), name=f"module-{digest[:12]}"
            )
            self._fetching[digest] = task
            task.add_done_callback(self._fetched)
        # Shielded: an ask given up (node closing) must not cancel the fetch others wait for.
        return await asyncio.shield(task)

    def _fetched(self, task: asyncio.Task[str]) -> None:
        for digest, running in list(self._fetching.items()):
            if running is task:
                del self._fetching[digest]
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have given up

    async def _fetch_once(self, requester_id: str, digest: str) -> str:
        if self._source is None:
            raise Unavailable(
                f"this node cannot fetch the module {digest} the requester sent by reference",
                component="Compute",
            )
        self.fetches += 1
        try:
            url = await self._source.get_module(requester_id, digest)
        except NotFound as err:
            raise NotFound(
                f"requester {requester_id} does not hold the WASM module {digest} its job "
                f"names: {err.message}",
                hint="submit the job again with its module",
                component="Compute",
            ) from None
        except BacalhauError as err:
            if not err.retryable:
                raise
            raise Unavailable(
                f"cannot fetch the WASM module {digest} from requester {requester_id}: "
                f"{err.message}",
                component="Compute",
            ) from err
        if module_digest(url) != digest:
            raise InvalidContent(
                f"the WASM module requester {requester_id} sent for {digest} does not match "
                "that hash: refused",
                details={"SHA256": digest},
            )
        self._store.keep_module(digest, url)
        _log.info("fetched WASM module %s (%d bytes) from %s", digest[:12], len(url), requester_id)
        return url
