"""The requester's look at what a verified replica published (the orchestrator's
:class:`~bacalhau.orchestrator.ResultChecker`), per publisher:

- ``urlDownload`` (``local``: the archive the compute node serves) and ``s3`` archived
  results (through a pre-signed URL, signed with the requester's credentials): the archive is
  downloaded as a stream and its results' CID computed as it arrives
  (:func:`~bacalhau.publisher.archive_cid`), in a thread.
- ``ipfs``: the CID is the address, so the question is whether the producing node serves it:
  every block of the DAG is asked of that node alone (another node holding the same content
  proves nothing about this one's) and checked against its CID; nothing is stored.
- ``noop`` (or nothing): nothing was published; the CID is only a claim.

What the requester reads is bounded by ``max_bytes`` (``result_check_max_bytes``); beyond it,
and when the content cannot be reached, the result is "unchecked", never a disagreement: only
content read and found different (or a node that answers it lacks its own blocks) is.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import BinaryIO, cast

from bacalhau.errors import BacalhauError, CorruptBlock, InvalidCID
from bacalhau.models import SpecConfig
from bacalhau.orchestrator import ResultCheck
from bacalhau.publisher import ArchiveDigest, archive_cid
from bacalhau.storage import BlockPeers, ProviderFinder
from bacalhau.storage.cid import CID, DAG_PB, Blockstore
from bacalhau.storage.cid._dagpb import decode_node

__all__ = ["DEFAULT_CHECK_MAX_BYTES", "PublishedResultChecker"]

#: Default bound on what the requester reads to check one replica's results (1 GiB).
DEFAULT_CHECK_MAX_BYTES = 1 << 30
#: Seconds a download may stall; seconds a whole download, or a whole DAG walk, may take.
_READ_TIMEOUT = 30.0
_DOWNLOAD_TIMEOUT = 600.0
_WALK_TIMEOUT = 300.0
#: Blocks asked of the producing node at once.
_BATCH = 16


class PublishedResultChecker:
    """Checks published results against their claimed CID (see the module's docstring).

    ``presign`` turns an ``s3`` result into a pre-signed one (None: the operator disabled
    pre-signed URLs); ``peers`` and ``finder`` reach other nodes' blocks; ``local`` is this
    node's own store, for results a hybrid node published itself (``node_id``).
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_CHECK_MAX_BYTES,
        presign: Callable[[SpecConfig], SpecConfig] | None = None,
        peers: BlockPeers | None = None,
        finder: ProviderFinder | None = None,
        local: Blockstore | None = None,
        node_id: str = "",
    ) -> None:
        self._max_bytes = max_bytes
        self._presign = presign
        self._peers = peers
        self._finder = finder
        self._local = local
        self._node_id = node_id

    async def check(self, result: SpecConfig, claimed_cid: str, node_id: str) -> ResultCheck:
        kind = result.type.lower()
        if kind in ("", "noop"):
            return ResultCheck.unchecked("nothing was published, so the CID is only a claim")
        if not claimed_cid:
            return ResultCheck.unchecked("the result names no CID")
        if kind == "ipfs":
            return await self._check_dag(claimed_cid, node_id)
        if kind == "s3":
            if self._presign is None:
                return ResultCheck.unchecked("pre-signed URLs are disabled on this requester")
            result = await asyncio.to_thread(self._presign, result)
            kind = result.type.lower()
            if kind != "s3presigned":
                return ResultCheck.unchecked(
                    "no pre-signed URL for these S3 results (plain objects, or no credentials)"
                )
        url = result.params.get("PreSignedURL" if kind == "s3presigned" else "URL")
        if kind not in ("urldownload", "s3presigned") or not isinstance(url, str) or not url:
            return ResultCheck.unchecked(f"results published as {result.type!r} are not checked")
        if not url.startswith(("http://", "https://")):
            return ResultCheck.unchecked("the result's URL is not HTTP")
        try:
            digest = await asyncio.to_thread(self._digest_url, url)
        except (OSError, ValueError, urllib.error.URLError) as err:
            return ResultCheck.unchecked(f"the results could not be downloaded: {err}")
        return _compare(digest, claimed_cid)

    def _digest_url(self, url: str) -> ArchiveDigest:
        """Download the archive at ``url`` and compute its results' CID (blocking)."""
        with urllib.request.urlopen(url, timeout=_READ_TIMEOUT) as response:
            # A server trickling bytes just fast enough never stalls: bound the whole read.
            stream = _Deadline(response, time.monotonic() + _DOWNLOAD_TIMEOUT)
            return archive_cid(cast(BinaryIO, stream), max_bytes=self._max_bytes)

    async def _check_dag(self, claimed_cid: str, node_id: str) -> ResultCheck:
        try:
            root = CID.parse(claimed_cid)
        except InvalidCID as err:
            return ResultCheck.mismatch("", f"the published CID is not one: {err.message}")
        try:
            async with asyncio.timeout(_WALK_TIMEOUT):
                return await self._walk(root, node_id)
        except TimeoutError:
            return ResultCheck.unchecked(f"its DAG was not read within {_WALK_TIMEOUT:.0f} s")
        except BacalhauError as err:
            return ResultCheck.unchecked(f"node {node_id} could not be asked: {err.message}")

    async def _walk(self, root: CID, node_id: str) -> ResultCheck:
        """Ask ``node_id`` for every block below ``root``, checking each against its CID."""
        get = self._block_source(root, node_id)
        if get is None:
            return ResultCheck.unchecked(f"node {node_id} is not reachable from this requester")
        seen = {root}
        todo = deque([root])
        read = 0
        while todo:
            batch = [todo.popleft() for _ in range(min(_BATCH, len(todo)))]
            answers = await get(batch)
            for cid in batch:
                data = answers.get(cid)
                if data is None:
                    return ResultCheck.mismatch(
                        "", f"node {node_id} does not serve block {cid} of the results it claims"
                    )
                read += len(data)
                if read > self._max_bytes:
                    return ResultCheck.unchecked(
                        f"the results are larger than the {self._max_bytes}-byte limit"
                    )
            try:
                links = await asyncio.to_thread(_verified_links, batch, answers)
            except CorruptBlock as err:
                return ResultCheck.mismatch("", f"node {node_id} served {err.message}")
            for link in links:
                if link not in seen:
                    seen.add(link)
                    todo.append(link)
        return ResultCheck.matched(str(root))

    def _block_source(
        self, root: CID, node_id: str
    ) -> Callable[[Sequence[CID]], Awaitable[dict[CID, bytes | None]]] | None:
        """How to ask the producing node for blocks (this node's own store for itself)."""
        local = self._local
        if node_id == self._node_id and local is not None:

            def read_local(cids: Sequence[CID]) -> dict[CID, bytes | None]:
                return {cid: local.get(cid) if local.has(cid) else None for cid in cids}

            async def from_local(cids: Sequence[CID]) -> dict[CID, bytes | None]:
                return await asyncio.to_thread(read_local, cids)

            return from_local
        peers, finder = self._peers, self._finder
        if peers is None or finder is None:
            return None
        peer = next((p for p in finder.providers(root) if p.node_id == node_id), None)
        if peer is None:
            return None

        async def from_peer(cids: Sequence[CID]) -> dict[CID, bytes | None]:
            got: dict[CID, bytes | None] = {}
            async for cid, data in peers.get_blocks(peer, cids):
                got[cid] = data
            return got

        return from_peer


class _Deadline:
    """A stream whose reads fail once ``deadline`` (monotonic) has passed."""

    def __init__(self, raw: BinaryIO, deadline: float) -> None:
        self._raw = raw
        self._deadline = deadline

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise TimeoutError(f"the download took longer than {_DOWNLOAD_TIMEOUT:.0f} s")
        return self._raw.read(size)


def _verified_links(batch: Sequence[CID], answers: dict[CID, bytes | None]) -> list[CID]:
    """Check each block against its CID; returns the links below them."""
    links: list[CID] = []
    for cid in batch:
        data = answers[cid] or b""
        cid.verify(data)
        if cid.codec == DAG_PB:
            links.extend(link.cid for link in decode_node(data).links)
    return links


def _compare(digest: ArchiveDigest, claimed_cid: str) -> ResultCheck:
    if digest.skipped:
        return ResultCheck.unchecked(digest.skipped)
    if digest.malformed:
        return ResultCheck.mismatch("", f"the published archive is not results: {digest.malformed}")
    if digest.cid != claimed_cid:
        return ResultCheck.mismatch(digest.cid, f"the published archive's results are {digest.cid}")
    return ResultCheck.matched(digest.cid)
