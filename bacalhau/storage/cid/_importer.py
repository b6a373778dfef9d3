"""UnixFS importer: files, directories and symlinks to the CIDs ``ipfs add`` prints.

Files stream through in bounded memory: one chunk is read, hashed and handed to the sink at
a time, and the balanced layout keeps at most ``max_links`` pending links per DAG level
(see :class:`_BalancedFile`). The rules are those of ``ipfs add`` (Kubo) and the JS
importer ``ipfs-unixfs-importer``; ``ImportOptions`` names the settings that change a CID.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from ._cid import CID, DAG_PB, RAW
from ._dagpb import DataType, PBLink, decode_node, encode_file_leaf, encode_node, encode_unixfs
from ._hamt import build_shard

__all__ = ["BlockSink", "ImportOptions", "ImportResult", "Importer"]

DEFAULT_CHUNK_SIZE: Final = 262_144
DEFAULT_MAX_LINKS: Final = 174
DEFAULT_SHARD_THRESHOLD: Final = 262_144
_DIRECTORY_DATA: Final = encode_unixfs(DataType.DIRECTORY)


#: Told of every entry of a tree as it is added: (path relative to the top, result).
EntryCallback = Callable[[str, "ImportResult"], None]


class BlockSink(Protocol):
    """Where imported blocks go. The importer computed each CID from the bytes it passes,
    so the sink need not hash them again."""

    def put_trusted(self, cid: CID, data: bytes | bytearray) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOptions:
    """The settings that decide a CID (``ipfs add`` flags in brackets).

    ``raw_leaves=None`` follows the CID version as Kubo does: dag-pb leaves for CIDv0, raw
    leaves for CIDv1 (``--raw-leaves``). ``shard_at_threshold`` selects the HAMT rule of
    Kubo 0.39 and older (shard when the estimate is >= the threshold instead of >).
    """

    cid_version: int = 0  # --cid-version
    raw_leaves: bool | None = None  # --raw-leaves
    chunk_size: int = DEFAULT_CHUNK_SIZE  # --chunker=size-N
    max_links: int = DEFAULT_MAX_LINKS  # Import.UnixFSFileMaxLinks
    hidden: bool = False  # --hidden
    shard_threshold: int = DEFAULT_SHARD_THRESHOLD  # Import.UnixFSHAMTDirectorySizeThreshold
    shard_at_threshold: bool = False

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        if self.cid_version == 0 and self.raw_leaves:
            raise ValueError("raw leaves need CIDv1")
        if self.chunk_size < 1 or self.max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")

    @property
    def uses_raw_leaves(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The root of an import: its CID, the cumulative size of its DAG (``Tsize``, the size
    a parent's link records) and, for a file, its length in bytes (0 otherwise)."""

    cid: CID
    tsize: int
    size: int = 0


@dataclass(slots=True)
class _Child:
    cid: CID
    tsize: int
    filesize: int


class _BalancedFile:
    """The balanced layout, built as the leaves arrive.

    ``levels[i]`` holds the pending children at height i; a full run of ``max_links`` gets
    its parent at once, so memory is one run of links per level. At the end every partial
    run gets a parent too (even a run of one), so all leaves sit at the same depth, the
    shape Kubo's balanced builder gives.
    """

    def __init__(self, max_links: int, emit: Callable[[bytes], CID]) -> None:
        self._max = max_links
        self._emit = emit
        self._levels: list[list[_Child]] = [[]]

    def add(self, child: _Child) -> None:
        self._push(0, child)

    def _push(self, level: int, child: _Child) -> None:
        if level == len(self._levels):
            self._levels.append([])
        run = self._levels[level]
        run.append(child)
        if len(run) == self._max:
            self._levels[level] = []
            self._push(level + 1, self._parent(run))

    def _parent(self, run: list[_Child]) -> _Child:
        sizes = [c.filesize for c in run]
        data = encode_unixfs(DataType.FILE, filesize=sum(sizes), blocksizes=sizes)
        block = encode_node((PBLink(c.cid, b"", c.tsize) for c in run), data)
        cid = self._emit(block)
        return _Child(cid, len(block) + sum(c.tsize for c in run), sum(sizes))

    def finish(self) -> _Child:
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


class Importer:
    """Turns bytes, files and directory trees into UnixFS DAGs.

    ``sink`` receives every block (a :class:`~bacalhau.storage.cid.Blockstore`, or ``None``
    to only compute the CID, like ``ipfs add --only-hash``).
    """

    def __init__(self, sink: BlockSink | None = None, options: ImportOptions | None = None):
        self._sink = sink
        self.options = options or ImportOptions()
        self._raw = self.options.uses_raw_leaves
        self._version = self.options.cid_version

    # -- blocks -------------------------------------------------------------------------

    def _emit_node(self, block: bytes) -> CID:
        cid = CID.from_digest(hashlib.sha256(block).digest(), codec=DAG_PB, version=self._version)
        if self._sink is not None:
            self._sink.put_trusted(cid, block)
        return cid

    def _leaf(self, chunk: bytes) -> _Child:
        if self._raw:
            cid = CID.from_digest(hashlib.sha256(chunk).digest(), codec=RAW, version=1)
            if self._sink is not None:
                self._sink.put_trusted(cid, chunk)
            return _Child(cid, len(chunk), len(chunk))
        prefix, suffix = encode_file_leaf(len(chunk))
        if self._sink is None:
            # Hash the parts: no 256 KiB copy when nothing is stored.
            digest = hashlib.sha256(prefix)
            digest.update(chunk)
            digest.update(suffix)
            cid = CID.from_digest(digest.digest(), codec=DAG_PB, version=self._version)
            return _Child(cid, len(prefix) + len(chunk) + len(suffix), len(chunk))
        block = b"".join((prefix, chunk, suffix))
        return _Child(self._emit_node(block), len(block), len(chunk))

    # -- files --------------------------------------------------------------------------

    def _full_leaf(self, block: bytearray, chunk_size: int) -> _Child:
        """A leaf whose chunk was read straight into its block's frame (no copy)."""
        digest = hashlib.sha256(block).digest()
        codec = RAW if self._raw else DAG_PB
        cid = CID.from_digest(digest, codec=codec, version=self._version)
        if self._sink is not None:
            self._sink.put_trusted(cid, block)
        return _Child(cid, len(block), chunk_size)

    def add_stream(self, stream: BinaryIO) -> ImportResult:
        """Import a file's content read from ``stream`` until its end.

        Each full chunk is read directly into a fresh buffer laid out as its leaf block
        (header, chunk, trailer), hashed there and handed to the sink: one pass over the
        bytes besides the read itself.
        """
        size = self.options.chunk_size
        head, tail = (b"", b"") if self._raw else encode_file_leaf(size)
        start, end = len(head), len(head) + size
        layout = _BalancedFile(self.options.max_links, self._emit_node)
        leaves = 0
        while True:
            block = bytearray(end + len(tail))
            view = memoryview(block)
            got = _read_into(stream, view[start:end])
            if got == size:
                view[:start] = head
                view[end:] = tail
                view.release()
                layout.add(self._full_leaf(block, size))
                leaves += 1
                continue
            if got or not leaves:  # the last, short chunk; an empty file is one empty leaf
                layout.add(self._leaf(bytes(view[start : start + got])))
            view.release()
            break
        root = layout.finish()
        return ImportResult(root.cid, root.tsize, root.filesize)

    def add_bytes(self, data: bytes) -> ImportResult:
        """Import an in-memory file."""
        return self.add_stream(io.BytesIO(data))

    def add_file(self, path: str | os.PathLike[str]) -> ImportResult:
        with open(path, "rb") as stream:
            return self.add_stream(stream)

    def add_symlink(self, target: bytes) -> ImportResult:
        """A UnixFS symlink node pointing at ``target`` (stored, never followed)."""
        block = encode_node((), encode_unixfs(DataType.SYMLINK, data=target))
        return ImportResult(self._emit_node(block), len(block))

    # -- directories --------------------------------------------------------------------

    def add_path(
        self, path: str | os.PathLike[str], *, on_entry: EntryCallback | None = None
    ) -> ImportResult:
        """Import a file, a symlink (as a link, not its target) or a directory tree, like
        ``ipfs add -r PATH``. In a tree, hidden entries (names starting with ``.``) are
        skipped unless ``hidden``; sockets, FIFOs and devices are skipped (they have no
        content); the top-level path itself is always added.

        ``on_entry(relative_path, result)`` is called for every entry once it is added,
        children before their directory; the top-level path is ``""``.
        """
        result = self._add_any(os.fspath(path), "", on_entry)
        if result is None:
            raise ValueError(f"{path} is not a file, a directory or a symlink")
        return result

    def _add_any(self, path: str, rel: str, on_entry: EntryCallback | None) -> ImportResult | None:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            result = self.add_symlink(os.fsencode(os.readlink(path)))
        elif stat.S_ISDIR(st.st_mode):
            result = self._add_directory(path, rel, on_entry)
        elif stat.S_ISREG(st.st_mode):
            result = self.add_file(path)
        else:
            return None
        if on_entry is not None:
            on_entry(rel, result)
        return result

    def _add_directory(self, path: str, rel: str, on_entry: EntryCallback | None) -> ImportResult:
        links: list[PBLink] = []
        with os.scandir(path) as entries:
            names = sorted(os.fsencode(entry.name) for entry in entries)
        for name in names:
            if name.startswith(b".") and not self.options.hidden:
                continue
            text = os.fsdecode(name)
            child = f"{rel}/{text}" if rel else text
            result = self._add_any(os.path.join(path, text), child, on_entry)
            if result is not None:
                links.append(PBLink(result.cid, name, result.tsize))
        return self.add_directory_links(links)

    def add_directory_links(self, links: list[PBLink]) -> ImportResult:
        """A directory from its entries (name -> child CID and Tsize), sharded when the
        links-bytes estimate passes the threshold."""
        links = sorted(links, key=lambda link: link.name)
        estimate = sum(len(link.name) + len(link.cid.binary) for link in links)
        threshold = self.options.shard_threshold
        if estimate > threshold or (self.options.shard_at_threshold and estimate == threshold):
            root = build_shard(links, self._emit_link)
            return ImportResult(root.cid, root.tsize)
        block = encode_node(links, _DIRECTORY_DATA)
        return ImportResult(self._emit_node(block), len(block) + sum(x.tsize for x in links))

    def _emit_link(self, block: bytes) -> PBLink:
        # A shard node's cumulative size: its block plus its links' sizes. Parse back the
        # sizes it was built from rather than thread them through the builder.
        tsize = len(block) + sum(link.tsize for link in decode_node(block).links)
        return PBLink(self._emit_node(block), b"", tsize)


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from the stream unless it ends first; returns the bytes read. Short
    reads (pipes, sockets) are retried: a short chunk in the middle would change every CID."""
    readinto = getattr(stream, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:]) or 0
        else:
            data = stream.read(len(view) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got
