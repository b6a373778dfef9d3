"""The ``ipfs`` source: content named by CID (``CID`` or ``CID/sub/path``), exported from
the compute node's own blockstore into the execution's input directory.

Blocks the node does not hold are asked of a :class:`BlockFetcher`. The node injects one;
until nodes exchange blocks the default, :class:`LocalOnlyFetcher`, has nowhere to ask, so a
CID this node does not hold fails saying it was not found in the cluster. Every block is
verified against its CID on read (the blockstore does it), so a damaged block never reaches
a job.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol

from bacalhau.errors import BlockNotFound, InvalidCID, InvalidContent, InvalidJobSpec
from bacalhau.models import NOT_IN_CLUSTER, SpecConfig
from bacalhau.storage._base import PreparedPath, input_failed, str_param
from bacalhau.storage._exchange import NOT_IN_CLUSTER_HINT
from bacalhau.storage._locality import dag_size
from bacalhau.storage.cid import CID, Blockstore, export, resolve

_KIND = "ipfs"
DEFAULT_FETCH_TIMEOUT = 60.0


class BlockFetcher(Protocol):
    """Gets a block this node lacks from the rest of the cluster."""

    async def fetch(self, cid: CID, *, timeout: float) -> bytes:
        """Return the block's verified bytes, stored in the node's blockstore; raise
        :class:`~bacalhau.errors.BlockNotFound` when no member has it within ``timeout``."""
        ...


class LocalOnlyFetcher:
    """Knows no other node: a block missing locally is not found (at once)."""

    async def fetch(self, cid: CID, *, timeout: float) -> bytes:
        raise BlockNotFound(f"block {cid} is not in this node's store", cid=str(cid))


def parse_cid_path(text: str, *, field: str = "Source.Params.CID") -> tuple[CID, str]:
    """``CID``, ``CID/sub/path``, ``/ipfs/CID/...`` or ``ipfs://CID/...`` -> (CID, path)."""
    value = text.strip()
    for prefix in ("ipfs://", "/ipfs/"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
    head, _, path = value.partition("/")
    if not head:
        raise InvalidJobSpec("an ipfs input needs a CID", field=field)
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise InvalidJobSpec(f"path {path!r} must not contain '.' or '..'", field=field)
    return CID.parse(head, field=field), "/".join(parts)


class _FetchingSource:
    """The blockstore, falling back to the fetcher for blocks it lacks (called from the
    export thread; the fetch runs on the node's event loop)."""

    def __init__(
        self,
        store: Blockstore,
        fetcher: BlockFetcher,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._loop = loop
        self._deadline = deadline

    def get(self, cid: CID) -> bytes:
        try:
            return self._store.get(cid)
        except BlockNotFound:
            pass
        remaining = max(0.0, self._deadline - time.monotonic())
        future = asyncio.run_coroutine_threadsafe(
            self._fetcher.fetch(cid, timeout=remaining), self._loop
        )
        return future.result(timeout=remaining + 1.0)


class IPFSSource:
    """Exports CIDs from the node's blockstore (fetching missing blocks through ``fetcher``)."""

    def __init__(
        self,
        store: Blockstore,
        *,
        fetcher: BlockFetcher | None = None,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
    ) -> None:
        self._store = store
        self._fetcher = fetcher or LocalOnlyFetcher()
        self._timeout = timeout

    @property
    def name(self) -> str:
        return _KIND

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        parse_cid_path(str_param(spec, "CID", required=True))

    async def size(self, spec: SpecConfig) -> int | None:
        """The size of content held here, as its DAG records it (None when it is not here:
        it would be fetched, and only the node holding it knows)."""
        root, path = parse_cid_path(str_param(spec, "CID", required=True))

        def measure() -> int | None:
            try:
                return dag_size(self._store, resolve(self._store, root, path))
            except (BlockNotFound, InvalidContent):
                return None

        return await asyncio.to_thread(measure)

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        text = str_param(spec, "CID", required=True)
        root, path = parse_cid_path(text)
        started = time.monotonic()
        source = _FetchingSource(
            self._store, self._fetcher, asyncio.get_running_loop(), started + self._timeout
        )
        target = dest / "content"

        def run() -> None:
            cid = resolve(source, root, path) if path else root
            export(source, cid, target)

        try:
            await asyncio.to_thread(run)
        except BlockNotFound as err:
            if not err.cid:  # a path inside content that is here, not a missing block
                raise input_failed(f"{text}: {err.message}", kind=_KIND) from None
            everyone = err.details.get(NOT_IN_CLUSTER) == "true"
            raise self._not_found(text, root, err.cid, started, everyone=everyone) from None
        except TimeoutError:
            raise self._not_found(text, root, "", started) from None
        except InvalidCID as err:
            raise InvalidJobSpec(err.message, field="Source.Params.CID") from None
        return PreparedPath(target)

    def _not_found(
        self, text: str, root: CID, missing: str, started: float, *, everyone: bool = False
    ) -> BlockNotFound:
        """``everyone``: every member was asked and answered that it lacks it (see
        :data:`~bacalhau.models.NOT_IN_CLUSTER`)."""
        waited = time.monotonic() - started
        detail = f" (block {missing} missing)" if missing and missing != str(root) else ""
        asked = "; every member of the cluster was asked" if everyone else ""
        return BlockNotFound(
            f"{text} not found in the cluster after {waited:.0f} s{detail}{asked}",
            cid=missing or str(root),
            hint=NOT_IN_CLUSTER_HINT,
            details={NOT_IN_CLUSTER: "true"} if everyone else None,
        )
