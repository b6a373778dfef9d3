"""UnixFS importer: files, directories and symlinks to the CIDs ``ipfs add`` prints.

Files stream through in bounded memory: one chunk is read, hashed and handed to the sink at
a time, and the balanced layout keeps at most ``max_links`` pending links per DAG level
(see :class:`~._layout.BalancedFile`). The rules are those of ``ipfs add`` (Kubo) and the JS
importer ``ipfs-unixfs-importer``; ``ImportOptions`` names the settings that change a CID.

Two ways in: *pull* (``add_path``, ``add_stream``: the importer reads) and *push*
(:class:`FileBuilder`, :class:`DirectoryBuilder`: the caller hands over bytes and finished
entries as it reads them for some other purpose). A ``TreeVisitor`` given to ``add_path``
combines them: it sees every entry and reads each file's content, and the CID is computed
from the bytes it reads, so a tree is read once for, say, an archive and its CID.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol, runtime_checkable

from bacalhau.errors import InvalidRequest

from ._cid import CID, DAG_PB, RAW
from ._dagpb import DataType, PBLink, decode_node, encode_file_leaf, encode_node, encode_unixfs
from ._hamt import build_shard
from ._layout import BalancedFile, Child

__all__ = [
    "BlockSink",
    "DirectoryBuilder",
    "FileBuilder",
    "FrameSink",
    "ImportOptions",
    "ImportResult",
    "Importer",
    "TreeEntry",
    "TreeVisitor",
]

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


@runtime_checkable
class FrameSink(BlockSink, Protocol):
    """A sink that takes over the buffers full chunks were read into and hands written ones
    back (:class:`~bacalhau.storage.cid.BatchWriter`), so an import cycles through a few
    buffers instead of faulting in fresh memory for every chunk."""

    def put_frame(self, cid: CID, frame: bytearray) -> None: ...

    def spare_frame(self, size: int) -> bytearray | None: ...


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


class Importer:
    """Turns bytes, files and directory trees into UnixFS DAGs.

    ``sink`` receives every block (a :class:`~bacalhau.storage.cid.Blockstore`, or ``None``
    to only compute the CID, like ``ipfs add --only-hash``).
    """

    def __init__(self, sink: BlockSink | None = None, options: ImportOptions | None = None):
        self._sink = sink
        # Asked once, and only of a sink: a runtime protocol check costs more than hashing a
        # small chunk, and an archive's CID (no sink) is computed once per published result.
        self._frames = sink if sink is not None and isinstance(sink, FrameSink) else None
        #: Without a sink, the one frame a finished file leaves, for the next file.
        self._idle_frame: bytearray | None = None
        #: Where a visited file's unread rest is read to (allocated once, on first use).
        self._drain: bytearray | None = None
        self.options = options or ImportOptions()
        self._raw = self.options.uses_raw_leaves
        self._version = self.options.cid_version

    # -- blocks -------------------------------------------------------------------------

    def _emit_node(self, block: bytes) -> CID:
        cid = CID.from_digest(hashlib.sha256(block).digest(), codec=DAG_PB, version=self._version)
        if self._sink is not None:
            self._sink.put_trusted(cid, block)
        return cid

    def _leaf(self, chunk: bytes) -> Child:
        if self._raw:
            cid = CID.from_digest(hashlib.sha256(chunk).digest(), codec=RAW, version=1)
            if self._sink is not None:
                self._sink.put_trusted(cid, chunk)
            return Child(cid, len(chunk), len(chunk))
        prefix, suffix = encode_file_leaf(len(chunk))
        if self._sink is None:
            # Hash the parts: no 256 KiB copy when nothing is stored.
            digest = hashlib.sha256(prefix)
            digest.update(chunk)
            digest.update(suffix)
            cid = CID.from_digest(digest.digest(), codec=DAG_PB, version=self._version)
            return Child(cid, len(prefix) + len(chunk) + len(suffix), len(chunk))
        block = b"".join((prefix, chunk, suffix))
        return Child(self._emit_node(block), len(block), len(chunk))

    def _full_leaf(self, block: bytearray, chunk_size: int) -> Child:
        """A leaf whose chunk was written straight into its block's frame (no copy). The
        frame is the sink's from now on."""
        digest = hashlib.sha256(block).digest()
        codec = RAW if self._raw else DAG_PB
        cid = CID.from_digest(digest, codec=codec, version=self._version)
        if self._frames is not None:
            self._frames.put_frame(cid, block)
        elif self._sink is not None:
            self._sink.put_trusted(cid, block)
        return Child(cid, len(block), chunk_size)

    def _next_frame(self, used: bytearray) -> bytearray:
        """A buffer for the next chunk, after ``used`` went to ``_full_leaf``."""
        if self._sink is None:
            return used  # only hashed: nothing holds on to it
        return self._new_frame(len(used))

    def _new_frame(self, size: int) -> bytearray:
        """A chunk buffer: a reused one when there is one (a fresh one costs page faults
        worth a tenth of hashing it)."""
        if self._idle_frame is not None and len(self._idle_frame) == size:
            frame, self._idle_frame = self._idle_frame, None
            return frame
        if self._frames is not None:
            spare = self._frames.spare_frame(size)
            if spare is not None:
                return spare
        return bytearray(size)

    def _release_frame(self, frame: bytearray) -> None:
        """A finished file's last frame; kept for the next file when no sink holds it."""
        if self._sink is None:
            self._idle_frame = frame

    # -- files --------------------------------------------------------------------------

    def file_builder(self) -> FileBuilder:
        """A file imported from bytes pushed to it (:class:`FileBuilder`)."""
        return FileBuilder(self)

    def directory_builder(self) -> DirectoryBuilder:
        """A directory imported from finished entries pushed to it (:class:`DirectoryBuilder`)."""
        return DirectoryBuilder(self)

    def add_stream(self, stream: BinaryIO) -> ImportResult:
        """Import a file's content read from ``stream`` until its end.

        Each chunk is read directly into a buffer laid out as its leaf block (header,
        chunk, trailer), hashed there and handed to the sink: one pass over the bytes
        besides the read itself.
        """
        builder = self.file_builder()
        builder.update_from(stream)
        return builder.finish()

    def add_bytes(self, data: bytes) -> ImportResult:
        """Import an in-memory file (one that fits in a chunk is its one leaf, made without
        a chunk-sized frame to fill)."""
        return self._add_whole(data)

    def add_file(self, path: str | os.PathLike[str]) -> ImportResult:
        with open(path, "rb") as stream:
            return self.add_stream(stream)

    def add_symlink(self, target: bytes) -> ImportResult:
        """A UnixFS symlink node pointing at ``target`` (stored, never followed)."""
        block = encode_node((), encode_unixfs(DataType.SYMLINK, data=target))
        return ImportResult(self._emit_node(block), len(block))

    # -- directories --------------------------------------------------------------------

    def add_path(
        self,
        path: str | os.PathLike[str],
        *,
        on_entry: EntryCallback | None = None,
        visitor: TreeVisitor | None = None,
    ) -> ImportResult:
        """Import a file, a symlink (as a link, not its target) or a directory tree, like
        ``ipfs add -r PATH``. In a tree, hidden entries (names starting with ``.``) are
        skipped unless ``hidden``; sockets, FIFOs and devices are skipped (they have no
        content); the top-level path itself is always added.

        ``on_entry(relative_path, result)`` is called for every entry once it is added,
        children before their directory; the top-level path is ``""``.

        ``visitor`` is handed every entry before it is imported, parents before children,
        hidden entries included (see :class:`TreeEntry`); the CID of each file is computed
        from the bytes the visitor reads of it (and the rest, read after it returns), so the
        tree's files are read once for both.
        """
        result = self._add_any(os.fspath(path), "", on_entry, visitor)
        if result is None:
            raise InvalidRequest(
                f"{path} is not a file, a directory or a symlink: a FIFO, a socket or a "
                "device has no content to add",
                hint="add a regular file, or a directory holding the data",
            )
        return result

    def _add_any(
        self, path: str, rel: str, on_entry: EntryCallback | None, visitor: TreeVisitor | None
    ) -> ImportResult | None:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if visitor is not None:
                visitor(TreeEntry(path, rel, st, None, imported=True))
            result = self.add_symlink(os.fsencode(os.readlink(path)))
        elif stat.S_ISDIR(st.st_mode):
            if visitor is not None:
                visitor(TreeEntry(path, rel, st, None, imported=True))
            result = self._add_directory(path, rel, on_entry, visitor)
        elif stat.S_ISREG(st.st_mode):
            result = self._add_regular(path, rel, st, visitor)
        else:
            return None
        if on_entry is not None:
            on_entry(rel, result)
        return result

    def _add_regular(
        self, path: str, rel: str, st: os.stat_result, visitor: TreeVisitor | None
    ) -> ImportResult:
        if visitor is None:
            return self.add_file(path)
        with open(path, "rb", buffering=0) as raw:
            if st.st_size <= _WHOLE_FILE:
                # A small file (most results are) is read whole, in one call: the visitor and
                # the CID take the same bytes without a reader layered on the file.
                data = _read_whole(raw, _WHOLE_FILE, st.st_size)
                if data is not None:
                    visitor(TreeEntry(path, rel, st, io.BytesIO(data), imported=True))
                    return self._add_whole(data)
                raw.seek(0)  # it grew since it was listed: read as a large one
            builder = self.file_builder()
            # Buffers no larger than the file (as it was when listed; it only sizes them): a
            # megabyte for every small file costs more than archiving it (mapped, unmapped).
            size = min(_DRAIN_SIZE, max(st.st_size, _MIN_BUFFER))
            content = io.BufferedReader(_Tee(raw, builder.update), size)
            visitor(TreeEntry(path, rel, st, content, imported=True))
            # Whatever the visitor left unread still goes through the tee into the CID.
            if self._drain is None or len(self._drain) < size:
                self._drain = bytearray(size)
            while content.readinto(self._drain):
                pass
        return builder.finish()

    def _add_whole(self, data: bytes) -> ImportResult:
        """The file holding ``data``, as a :class:`FileBuilder` pushed it gives it; one that
        fits in a chunk is its one leaf, made without a chunk-sized frame to fill."""
        if len(data) > self.options.chunk_size:
            builder = self.file_builder()
            builder.update(data)
            return builder.finish()
        layout = BalancedFile(self.options.max_links, self._emit_node)
        layout.add(self._leaf(data))
        root = layout.finish()
        return ImportResult(root.cid, root.tsize, root.filesize)

    def _add_directory(
        self, path: str, rel: str, on_entry: EntryCallback | None, visitor: TreeVisitor | None
    ) -> ImportResult:
        directory = self.directory_builder()
        for name in _sorted_names(path):
            text = os.fsdecode(name)
            child = f"{rel}/{text}" if rel else text
            child_path = os.path.join(path, text)
            if name.startswith(b".") and not self.options.hidden:
                if visitor is not None:
                    _visit_only(child_path, child, visitor)
                continue
            result = self._add_any(child_path, child, on_entry, visitor)
            if result is not None:
                directory.add(name, result)
        return directory.finish()

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


class FileBuilder:
    """One file imported from its bytes as the caller pushes them, in order
    (:meth:`update`), then :meth:`finish`; the same CID as ``add_stream`` of those bytes,
    however they are split.

    Pushed bytes are copied once, into the frame of the leaf block they belong to; a full
    chunk is hashed and handed to the sink at once, so memory is one chunk plus the
    layout's pending links.
    """

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self._chunk = importer.options.chunk_size
        self._head, self._tail = (
            (b"", b"") if importer.options.uses_raw_leaves else encode_file_leaf(self._chunk)
        )
        self._start = len(self._head)
        self._end = self._start + self._chunk
        self._block = importer._new_frame(self._end + len(self._tail))
        self._filled = 0
        self._leaves = 0
        self._layout = BalancedFile(importer.options.max_links, importer._emit_node)
        self._finished = False

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the file."""
        if self._finished:
            raise RuntimeError("the file is finished")
        view = memoryview(data).cast("B")
        while view:
            take = min(len(view), self._chunk - self._filled)
            at = self._start + self._filled
            self._block[at : at + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._chunk:
                self._flush_full()

    def update_from(self, stream: BinaryIO) -> None:
        """Append everything ``stream`` holds until its end, read straight into the leaf
        frames (no copy). Short reads are retried: a short chunk would change the CID."""
        if self._finished:
            raise RuntimeError("the file is finished")
        while True:
            with memoryview(self._block) as view:
                got = _read_into(stream, view[self._start + self._filled : self._end])
            self._filled += got
            if self._filled < self._chunk:
                return
            self._flush_full()

    def _flush_full(self) -> None:
        block = self._block
        block[: self._start] = self._head
        block[self._end :] = self._tail
        self._layout.add(self._importer._full_leaf(block, self._chunk))
        self._leaves += 1
        # The sink may keep the block (a writer thread): the next chunk gets another frame.
        self._block = self._importer._next_frame(block)
        self._filled = 0

    def finish(self) -> ImportResult:
        """The file's root: the last, short chunk becomes a leaf (an empty file is one
        empty leaf) and the layout is closed."""
        if self._finished:
            raise RuntimeError("the file is finished")
        self._finished = True
        if self._filled or not self._leaves:
            with memoryview(self._block) as view:
                chunk = bytes(view[self._start : self._start + self._filled])
            self._layout.add(self._importer._leaf(chunk))
        self._importer._release_frame(self._block)
        self._block = bytearray()
        root = self._layout.finish()
        return ImportResult(root.cid, root.tsize, root.filesize)


class DirectoryBuilder:
    """One directory imported from its finished entries, pushed as they are ready
    (:meth:`add`), then :meth:`finish`; sharded like ``add_path`` when it is large."""

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self._links: list[PBLink] = []
        self._names: set[bytes] = set()

    def add(self, name: str | bytes, entry: ImportResult) -> None:
        """Link ``entry`` (a file's, symlink's or directory's root) under ``name``."""
        raw = os.fsencode(name)
        if not raw or b"/" in raw or raw in (b".", b".."):
            raise ValueError(f"{name!r} is not a directory entry name")
        if raw in self._names:
            raise ValueError(f"{name!r} is already in the directory")
        self._names.add(raw)
        self._links.append(PBLink(entry.cid, raw, entry.tsize))

    def finish(self) -> ImportResult:
        return self._importer.add_directory_links(self._links)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """An entry of a tree as ``add_path`` hands it to a :data:`TreeVisitor`.

    ``path`` is where it is on disk, ``rel`` its path below the top (``/``-separated, ``""``
    for the top itself) and ``stat`` its ``lstat``. ``content`` is set for regular files
    only: read from it (or not) while the visitor runs; what is read, and what is left,
    makes the file's CID. ``imported`` is False under hidden names the import leaves out
    (their content is then the plain file).
    """

    path: str
    rel: str
    stat: os.stat_result
    content: BinaryIO | None
    imported: bool


#: Told of every entry of a tree before it is imported (see :meth:`Importer.add_path`).
TreeVisitor = Callable[[TreeEntry], None]

_DRAIN_SIZE: Final = 1 << 20
#: Files listed at most this large are read whole, in one call, when visited.
_WHOLE_FILE: Final = 1 << 16
#: The smallest read buffer for a visited file (one that grew after it was listed, say).
_MIN_BUFFER: Final = 1 << 16


class _Tee(io.RawIOBase):
    """A file read through to ``consume``: every byte read from it is passed on once, in
    order. Not seekable, so nothing above it can read a byte twice."""

    def __init__(self, raw: io.RawIOBase, consume: Callable[[memoryview], None]) -> None:
        super().__init__()
        self._raw = raw
        self._consume = consume

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        got = self._raw.readinto(buffer) or 0
        if got:
            with memoryview(buffer) as view:
                self._consume(view.cast("B")[:got])
        return got


def _sorted_names(path: str) -> list[bytes]:
    """Entry names in the importer's order: as bytes, so unicode sorts as ``ipfs add``."""
    with os.scandir(path) as entries:
        return sorted(os.fsencode(entry.name) for entry in entries)


def _visit_only(path: str, rel: str, visitor: TreeVisitor) -> None:
    """Show the visitor an entry the import leaves out (and what is below it)."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        visitor(TreeEntry(path, rel, st, None, imported=False))
        for name in _sorted_names(path):
            text = os.fsdecode(name)
            _visit_only(os.path.join(path, text), f"{rel}/{text}", visitor)
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as content:
            visitor(TreeEntry(path, rel, st, content, imported=False))
    elif stat.S_ISLNK(st.st_mode):
        visitor(TreeEntry(path, rel, st, None, imported=False))


def _read_whole(raw: io.FileIO, limit: int, expected: int = 0) -> bytes | None:
    """Everything ``raw`` holds from its position, or None when that is over ``limit``
    bytes (what was read then is gone: the caller seeks back). ``expected``, the size it
    had when listed, sizes the first read (one more byte, to see the end at once)."""
    parts: list[bytes] = []
    left = limit + 1
    ask = min(expected + 1, left)
    while left > 0:
        data = raw.read(ask)
        if not data:
            break
        parts.append(data)
        left -= len(data)
        ask = left
    if left <= 0:
        return None
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
