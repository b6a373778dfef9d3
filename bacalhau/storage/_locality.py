"""Data locality, the storage side: which content a node tells the cluster it holds, and
which members to ask first for a DAG.

A node advertises a bounded map of its pinned roots (published results, uploaded data, fetched
inputs) to the size of each DAG, largest first, in its gossip record. The scheduler prefers
nodes that hold a job's inputs; the block exchange asks them first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bacalhau.errors import BlockNotFound, CorruptBlock
from bacalhau.storage._exchange import BlockPeer
from bacalhau.storage.cid import CID, DAG_PB, Blockstore
from bacalhau.storage.cid._dagpb import decode_node

#: Roots a node advertises at most: its gossip record stays small (about 50 bytes a root).
DEFAULT_ADVERTISED_ROOTS = 32


def dag_size(store: Blockstore, root: CID) -> int:
    """Bytes of the DAG below ``root`` as its root block records them (the root's length
    plus its links' cumulative sizes, as ``ipfs add`` writes them): one block read."""
    data = store.get(root)
    if root.codec != DAG_PB:
        return len(data)
    return len(data) + sum(link.tsize or 0 for link in decode_node(data).links)


class HeldRoots:
    """What a node advertises: its pinned roots whose root block is here, with their sizes,
    the largest ``limit`` of them. Sizes are remembered (a DAG never changes)."""

    def __init__(self, store: Blockstore, *, limit: int = DEFAULT_ADVERTISED_ROOTS) -> None:
        self._store = store
        self._limit = limit
        self._sizes: dict[CID, tuple[int, str]] = {}
        self._lock = threading.Lock()
        #: The last snapshot and the pin generation it was made at; the record publisher
        #: asks several times a second, and pins change rarely.
        self._cached: tuple[int, dict[str, int]] | None = None

    def cached(self) -> dict[str, int] | None:
        """The last :meth:`snapshot` while no pin changed since (None otherwise): it reads
        nothing, so a caller on the event loop needs no thread for the usual case."""
        generation = self._store.pin_generation
        with self._lock:
            if self._cached is not None and self._cached[0] == generation:
                return self._cached[1]
        return None

    def snapshot(self) -> dict[str, int]:
        """``{cid: size}`` of the largest pinned roots (blocking: call it off the loop)."""
        generation = self._store.pin_generation
        known_now = self.cached()
        if known_now is not None:
            return known_now
        held: list[tuple[int, str]] = []
        complete = True
        for cid in self._store.pins():
            with self._lock:
                known = self._sizes.get(cid)
            if known is None:
                try:
                    known = (dag_size(self._store, cid), str(cid))
                except (BlockNotFound, CorruptBlock):
                    complete = False  # pinned before its blocks arrived: look again later
                    continue
                with self._lock:
                    self._sizes[cid] = known
            held.append(known)
        held.sort(key=lambda item: (-item[0], item[1]))
        result = {cid: size for size, cid in held[: self._limit]}
        if complete:
            with self._lock:
                self._cached = (generation, result)
        return result


@dataclass(frozen=True, slots=True)
class Member:
    """A live member as the exchange sees it."""

    peer: BlockPeer
    held_roots: Mapping[str, int]
    compute: bool


def order_providers(root: CID, members: Iterable[Member]) -> Sequence[BlockPeer]:
    """Members to ask for ``root``'s DAG: those advertising it first (the largest copy
    first is meaningless: a root names one DAG), then compute nodes, then the rest."""
    names = {str(root), str(root.to_v1())}

    def rank(member: Member) -> tuple[int, str]:
        holds = any(name in member.held_roots for name in names)
        return (0 if holds else 1 if member.compute else 2, member.peer.node_id)

    return [m.peer for m in sorted(members, key=rank)]
