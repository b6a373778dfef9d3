"""The balanced file layout of ``ipfs add`` (Kubo's default ``--trickle=false``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._cid import CID
from ._dagpb import DataType, PBLink, encode_node, encode_unixfs

__all__ = ["BalancedFile", "Child"]


@dataclass(slots=True)
class Child:
    """A finished node of a file's DAG: its CID, cumulative size and file bytes below it."""

    cid: CID
    tsize: int
    filesize: int


class BalancedFile:
    """The balanced layout, built as the leaves arrive.

    ``levels[i]`` holds the pending children at height i; a full run of ``max_links`` gets
    its parent at once, so memory is one run of links per level. At the end every partial
    run gets a parent too (even a run of one), so all leaves sit at the same depth, the
    shape Kubo's balanced builder gives.
    """

    def __init__(self, max_links: int, emit: Callable[[bytes], CID]) -> None:
        self._max = max_links
        self._emit = emit
        self._levels: list[list[Child]] = [[]]

    def add(self, child: Child) -> None:
        self._push(0, child)

    def _push(self, level: int, child: Child) -> None:
        if level == len(self._levels):
            self._levels.append([])
        run = self._levels[level]
        run.append(child)
        if len(run) == self._max:
            self._levels[level] = []
            self._push(level + 1, self._parent(run))

    def _parent(self, run: list[Child]) -> Child:
        sizes = [c.filesize for c in run]
        data = encode_unixfs(DataType.FILE, filesize=sum(sizes), blocksizes=sizes)
        block = encode_node((PBLink(c.cid, b"", c.tsize) for c in run), data)
        cid = self._emit(block)
        return Child(cid, len(block) + sum(c.tsize for c in run), sum(sizes))

    def finish(self) -> Child:
        level = 0
        while True:
            top = max(i for i, run in enumerate(self._levels) if run)
            run = self._levels[level]
            if level == top and len(run) == 1:
                return run[0]
            if run:
                self._levels[level] = []
                self._push(level + 1, self._parent(run))
            level += 1
