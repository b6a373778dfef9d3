"""Block exchange: the blocks of a DAG this node lacks, fetched from cluster members.

:class:`BlockExchange` is the ``ipfs`` source's :class:`~bacalhau.storage.BlockFetcher`. Asked
for a block it does not hold, it fetches the whole DAG below it (the exporter is about to read
all of it) breadth-first, with a bounded window of requests in flight, each asking one peer
for a batch of blocks:

- **Resumable.** Blocks already in the store are read, not fetched; their links are followed,
  so an interrupted fetch continues where it stopped.
- **Verified.** Every block received is hashed against its CID before it is stored; a block
  that does not match is refused, counted against the peer (:attr:`BlockExchange.refused`),
  and asked of the next peer.
- **From likely holders first.** :class:`ProviderFinder` orders the members: those that
  advertise the root (data locality), then every other live member. A block no member has
  makes the fetch fail with "not found in the cluster after N s"; when every member asked
  answered (none was out of reach), the error is flagged ``NotInCluster``: no other node
  would find it either, and the requester does not try one.

The wire is behind :class:`BlockPeers` (implemented in :mod:`bacalhau.transport`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from bacalhau.errors import BacalhauError, BlockNotFound, CorruptBlock
from bacalhau.models import NOT_IN_CLUSTER
from bacalhau.storage.cid import CID, DAG_PB, Blockstore
from bacalhau.storage.cid._dagpb import DataType, decode_node, decode_unixfs
from bacalhau.storage.cid._hamt import PREFIX_LEN

log = logging.getLogger(__name__)

#: Requests in flight at once (each to one peer, for one batch of blocks).
DEFAULT_WINDOW = 8
#: Blocks asked for in one request (256 KiB chunks: 4 MiB per request).
DEFAULT_BATCH = 16
#: Pause before asking every member again for blocks no one had.
DEFAULT_RETRY_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class BlockPeer:
    """A member that may hold blocks: its node ID and gRPC address."""

    node_id: str
    address: str


#: The hint of content the cluster does not have.
NOT_IN_CLUSTER_HINT = (
    "add the content to a node of the cluster first (`bacalhau data add`, or a job "
    "published with -p ipfs), or check the CID: the CID of a result published with the "
    "local or s3 publisher names its content but is not stored by CID"
)


class BlockPeers(Protocol):
    """The wire: asks one member for blocks."""

    def get_blocks(
        self, peer: BlockPeer, cids: Sequence[CID]
    ) -> AsyncIterator[tuple[CID, bytes | None]]:
        """Yield ``(cid, data)`` for each CID asked, ``data`` None when the peer lacks it.
        The bytes are unverified. Raises :class:`~bacalhau.errors.BacalhauError` when the
        peer cannot be asked."""
        ...


class ProviderFinder(Protocol):
    """Which members to ask for a DAG."""

    def providers(self, root: CID) -> Sequence[BlockPeer]:
        """Live members other than this node, those likely to hold ``root`` first."""
        ...


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What a DAG fetch did."""

    blocks_fetched: int
    bytes_fetched: int
    #: Blocks that were already in the store (a resumed fetch).
    blocks_present: int


def _links(cid: CID, data: bytes) -> list[CID]:
    return [link.cid for link in decode_node(data).links] if cid.codec == DAG_PB else []


class _Walk:
    """One breadth-first fetch of the DAG below ``root``; with ``listing``, only what listing
    the directory ``root`` takes: its own block(s) and the first block of each entry (their
    kind and size), not the entries' content."""

    def __init__(
        self, exchange: BlockExchange, root: CID, deadline: float, *, listing: bool = False
    ) -> None:
        self.x = exchange
        self.root = root
        #: Listing: the blocks whose links are followed (the root and, in a sharded
        #: directory, its sub-shards); None: every block's.
        self.expand: set[CID] | None = {root} if listing else None
        self.deadline = deadline
        self.started = time.monotonic()
        self.seen: set[CID] = {root}
        self.local: deque[CID] = deque([root])
        self.missing: deque[CID] = deque()
        #: Index into the provider list of the next member to ask for each missing block.
        self.next_peer: dict[CID, int] = {}
        self.providers: list[BlockPeer] = []
        self.fetched = 0
        self.bytes = 0
        self.present = 0
        #: Members that could not be asked, or did not answer for every block asked.
        self.unanswered: set[str] = set()

    def _links(self, cid: CID, data: bytes) -> list[CID]:
        if self.expand is None:
            return _links(cid, data)
        if cid not in self.expand or cid.codec != DAG_PB:
            return []
        node = decode_node(data)
        kind = decode_unixfs(node.data).type
        if kind == DataType.HAMT_SHARD:
            self.expand.update(link.cid for link in node.links if len(link.name) == PREFIX_LEN)
        elif kind != DataType.DIRECTORY:
            return []  # a file: its first block says all a listing shows
        return [link.cid for link in node.links]

    def _follow(self, links: list[CID]) -> None:
        for link in links:
            if link not in self.seen:
                self.seen.add(link)
                self.local.append(link)

    def _scan_local(self, batch: list[CID]) -> tuple[list[CID], list[CID]]:
        """Split ``batch`` into links of the stored blocks and the blocks not stored."""
        links: list[CID] = []
        absent: list[CID] = []
        for cid in batch:
            if not self.x.store.has(cid):
                absent.append(cid)
                continue
            self.present += 1
            if cid.codec == DAG_PB:
                try:
                    links.extend(self._links(cid, self.x.store.get(cid)))
                except (BlockNotFound, CorruptBlock):
                    absent.append(cid)  # damaged or collected meanwhile: fetch it again
        return links, absent

    def _accept(self, peer: BlockPeer, blocks: list[tuple[CID, bytes]]) -> list[CID]:
        """Verify and store blocks from ``peer``; returns their links. A block that does not
        match its CID is refused and counted against the peer."""
        links: list[CID] = []
        verified: list[tuple[CID, bytes]] = []
        for cid, data in blocks:
            try:
                cid.verify(data)
            except CorruptBlock:
                self.x.refused[peer.node_id] += 1
                log.warning("node %s sent a block that does not match %s", peer.node_id, cid)
                self.missing.append(cid)
                continue
            verified.append((cid, data))
            self.fetched += 1
            self.bytes += len(data)
            links.extend(self._links(cid, data))
        # One write and one commit for the answer, not one of each per block.
        self.x.store.put_many_trusted(verified)
        return links

    async def _request(self, peer: BlockPeer, batch: list[CID]) -> None:
        got: list[tuple[CID, bytes]] = []
        answered: set[CID] = set()
        try:
            async for cid, data in self.x.peers.get_blocks(peer, batch):
                answered.add(cid)
                if data is None:
                    self.missing.append(cid)
                else:
                    got.append((cid, data))
        except BacalhauError as err:
            log.info("cannot get blocks from node %s: %s", peer.node_id, err.message)
        for cid in batch:
            if cid not in answered:
                self.missing.append(cid)
                self.unanswered.add(peer.node_id)
        if got:
            self._follow(await asyncio.to_thread(self._accept, peer, got))

    def _next_batch(self) -> tuple[BlockPeer, list[CID]] | None:
        """Up to a batch of missing blocks that have the same next peer to ask."""
        count = len(self.providers)
        index: int | None = None
        batch: list[CID] = []
        keep: deque[CID] = deque()
        while self.missing and len(batch) < self.x.batch:
            cid = self.missing.popleft()
            turn = self.next_peer.get(cid, 0)
            if turn >= count or (index is not None and turn != index):
                keep.append(cid)
                continue
            index = turn
            self.next_peer[cid] = turn + 1
            batch.append(cid)
        self.missing.extendleft(reversed(keep))
        return None if index is None else (self.providers[index], batch)

    def _exhausted(self) -> bool:
        count = len(self.providers)
        return all(self.next_peer.get(cid, 0) >= count for cid in self.missing)

    async def run(self) -> FetchReport:
        self.providers = list(self.x.finder.providers(self.root))
        inflight: set[asyncio.Task[None]] = set()
        try:
            while self.local or self.missing or inflight:
                if self.local:
                    batch = [self.local.popleft() for _ in range(min(64, len(self.local)))]
                    links, absent = await asyncio.to_thread(self._scan_local, batch)
                    self._follow(links)
                    self.missing.extend(absent)
                    continue
                while len(inflight) < self.x.window and self.missing and not self._exhausted():
                    picked = self._next_batch()
                    if picked is None:
                        break
                    inflight.add(asyncio.create_task(self._request(*picked)))
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise self._not_found()
                if inflight:
                    done, inflight = await asyncio.wait(
                        inflight, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        task.result()
                elif self.missing:
                    # Every member was asked for what is left: look again after a pause
                    # (a member may have joined or finished publishing).
                    await asyncio.sleep(min(self.x.retry_interval, remaining))
                    self.providers = list(self.x.finder.providers(self.root))
                    self.next_peer.clear()
        finally:
            for task in inflight:
                task.cancel()
        return FetchReport(self.fetched, self.bytes, self.present)

    def _not_found(self) -> BlockNotFound:
        waited = time.monotonic() - self.started
        first = self.missing[0] if self.missing else self.root
        which = "" if first == self.root else f" (block {first} missing)"
        # Every member asked answered that it lacks the block: another node would ask the
        # same members for nothing. One that could not be asked may hold it.
        everyone = not self.unanswered
        return BlockNotFound(
            f"{self.root} not found in the cluster after {waited:.0f} s{which}"
            + ("" if everyone else f" ({len(self.unanswered)} member(s) could not be asked)"),
            cid=str(first),
            hint=NOT_IN_CLUSTER_HINT,
            details={NOT_IN_CLUSTER: "true"} if everyone else None,
        )


class BlockExchange:
    """Fetches missing DAGs into ``store`` from the members ``finder`` names, over ``peers``.

    ``fetch`` (the :class:`~bacalhau.storage.BlockFetcher` contract) fetches the whole DAG
    below the block asked for; concurrent fetches of one root share a single walk.
    """

    def __init__(
        self,
        store: Blockstore,
        peers: BlockPeers,
        finder: ProviderFinder,
        *,
        window: int = DEFAULT_WINDOW,
        batch: int = DEFAULT_BATCH,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.store = store
        self.peers = peers
        self.finder = finder
        self.window = max(1, window)
        self.batch = max(1, batch)
        self.retry_interval = retry_interval
        #: Blocks refused because their bytes did not match their CID, by sending node.
        self.refused: Counter[str] = Counter()
        self._walks: dict[tuple[CID, bool], asyncio.Task[FetchReport]] = {}

    async def fetch_dag(self, root: CID, *, timeout: float) -> FetchReport:
        """Make the whole DAG below ``root`` present in the store; raise
        :class:`~bacalhau.errors.BlockNotFound` ("not found in the cluster after N s") when
        some block of it cannot be had within ``timeout`` seconds."""
        return await self._walk(root, timeout, listing=False)

    async def fetch_listing(self, root: CID, *, timeout: float) -> FetchReport:
        """Make present what listing ``root`` takes (its directory blocks and each entry's
        first block), not the entries' content; errors as :meth:`fetch_dag`."""
        return await self._walk(root, timeout, listing=True)

    async def _walk(self, root: CID, timeout: float, *, listing: bool) -> FetchReport:
        key = (root, listing)
        task = self._walks.get(key)
        if task is None:
            walk = _Walk(self, root, time.monotonic() + timeout, listing=listing)
            task = asyncio.create_task(walk.run())
            self._walks[key] = task
            task.add_done_callback(lambda _: self._walks.pop(key, None))
        return await asyncio.shield(task)

    async def fetch(self, cid: CID, *, timeout: float) -> bytes:
        """The verified block ``cid``, fetched (with the DAG below it) if not stored."""
        await self.fetch_dag(cid, timeout=timeout)
        return await asyncio.to_thread(self.store.get, cid)
