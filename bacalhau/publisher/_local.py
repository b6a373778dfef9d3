"""The ``local`` publisher: a gzip'd tar of the results, served over HTTP by this node.

The archive's entries are relative to the results directory (``stdout``, ``stderr``,
``exitCode``, ``<name>/...``), exactly what ``bacalhau job get`` extracts. The URL handed to the
requester must be reachable by clients, so the advertised ``address`` is configuration, not the
address the server binds (Bacalhau's "http://public:6001/..." bug came from mixing the two).

Archives of small results go into the server's :class:`ArchiveStore` when the publisher has
one (a row rather than a new file: see ``_archive_store``); the others are files.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import re
import sqlite3
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from bacalhau.errors import PublishFailed
from bacalhau.models import Job, SpecConfig
from bacalhau.publisher._archive_store import ArchiveStore
from bacalhau.publisher._kept import KeptArchives, KeptResults, gzip_whole, kept_cid, snapshot
from bacalhau.publisher._tar_headers import add_entry
from bacalhau.storage.cid import CID, Importer, TreeEntry

#: What the result server is willing to serve: ``<execID>.tar.gz``, never a hidden temp file.
ARCHIVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tar\.gz")
ARCHIVE_SUFFIX = ".tar.gz"
#: Read size when copying a file into the archive (tarfile's default is 16 KiB).
_COPY_BUFFER = 1 << 20
#: Results of at most this many bytes (and :data:`_SMALL_RESULTS_FILES` files, no folders)
#: are archived on the event loop: a trip to a worker thread costs more than that much work.
SMALL_RESULTS_BYTES = 64 * 1024
_SMALL_RESULTS_FILES = 8


class LocalPublisher:
    """Writes ``<directory>/<execID>.tar.gz`` and answers its ``urlDownload`` address.

    Pair it with a :class:`~bacalhau.publisher.LocalResultServer` serving ``directory``; when
    the server binds port 0, build the publisher after the server started
    (:meth:`LocalResultServer.publisher`) so the URL carries the real port.
    """

    def __init__(
        self,
        *,
        directory: Path,
        address: str,
        port: int,
        compress_level: int = 6,
        archives: ArchiveStore | None = None,
        kept: KeptArchives | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"local publisher needs the server's bound port, got {port}")
        if not address:
            raise ValueError("local publisher needs an address clients can reach")
        if not 0 <= compress_level <= 9:
            raise ValueError(f"gzip level must be 0-9, got {compress_level}")
        self._directory = directory
        self._compress_level = compress_level
        #: Where archives of small results go (None: files, as the others).
        self._archives = archives
        #: Whether the node's store keeps small results for the server (see ``_kept``).
        self._kept = kept
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        self._base_url = f"http://{host}:{port}"

    @property
    def name(self) -> str:
        return "local"

    @property
    def copies_results(self) -> bool:
        return True

    @property
    def directory(self) -> Path:
        return self._directory

    def url_for(self, execution_id: str) -> str:
        """The download address of one execution's archive."""
        return f"{self._base_url}/{execution_id}{ARCHIVE_SUFFIX}"

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        # The local publisher takes no params (Bacalhau ignores any it is given).
        return None

    def forget(self, execution_ids: Iterable[str]) -> None:
        """Drop the archives of ``execution_ids`` kept in the archive store (their files are
        the caller's to remove, as any file of an execution)."""
        if self._archives is not None:
            self._archives.forget(f"{e}{ARCHIVE_SUFFIX}" for e in execution_ids)

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        name = _archive_name(execution_id)
        target = self._directory / name

        try:
            if _is_small(results_dir):
                # A few small files take less time to archive than a trip to a thread.
                if self._archives is not None:
                    cid = self._keep_small_archive(results_dir, name, target)
                else:
                    cid = _write_small_archive(results_dir, target, self._compress_level)
            else:
                # Compression and hashing are CPU-bound: keep them off the event loop.
                cid = await asyncio.to_thread(
                    write_archive, results_dir, target, self._compress_level
                )
                if self._archives is not None:
                    self._archives.forget([name])  # an earlier publish's, now stale
        except (OSError, sqlite3.Error) as err:
            raise PublishFailed(
                f"local publisher could not archive {results_dir}: {err}",
                hint="check the compute node's disk space and the publisher directory",
            ) from err
        return SpecConfig(
            type="urlDownload", params={"URL": self.url_for(execution_id), "CID": str(cid)}
        )

    def keep_small_results(self, results_dir: Path) -> KeptResults | None:
        """The files of ``results_dir`` to keep in the node's store instead of archiving them
        (see :meth:`publish_kept`): when the node keeps small results and they are small;
        None otherwise (publish them with :meth:`publish`)."""
        if self._kept is None or self._kept.source is None:
            return None
        return snapshot(results_dir, max_files=_SMALL_RESULTS_FILES, max_bytes=SMALL_RESULTS_BYTES)

    def publish_kept(self, execution_id: str, kept: KeptResults) -> SpecConfig:
        """Publish results the node's store keeps (:meth:`keep_small_results`), committed
        with the execution's end, before its address leaves the node: their CID, computed
        from memory; the server archives them when they are downloaded."""
        name = _archive_name(execution_id)
        try:
            # A file of the name (an earlier publish of larger results) would shadow them.
            (self._directory / name).unlink(missing_ok=True)
        except OSError as err:
            raise PublishFailed(
                f"local publisher could not replace {name}: {err}",
                hint="check the compute node's disk space and the publisher directory",
            ) from err
        return SpecConfig(
            type="urlDownload",
            params={"URL": self.url_for(execution_id), "CID": str(kept_cid(kept))},
        )

    def _keep_small_archive(self, results_dir: Path, name: str, target: Path) -> CID:
        """Archive small results in memory into the archive store; a file of the same name
        (an earlier publish of a larger result) would shadow it, so it goes."""
        assert self._archives is not None
        data, cid = _archive_in_memory(results_dir, self._compress_level)
        self._archives.put(name, data)
        target.unlink(missing_ok=True)
        return cid


def _archive_name(execution_id: str) -> str:
    """``<execID>.tar.gz``; PublishFailed for an ID the result server would never serve."""
    name = f"{execution_id}{ARCHIVE_SUFFIX}"
    if not ARCHIVE_NAME.fullmatch(name):
        raise PublishFailed(f"cannot publish results of execution {execution_id!r}: bad ID")
    return name


def write_archive(results_dir: Path, target: Path, compress_level: int = 6) -> CID:
    """Write a gzip'd tar of ``results_dir`` to ``target`` atomically (temp file + rename)
    and return the directory's CID (``ipfs add -r``, defaults), hashed from the same reads
    that fill the archive: each file is read once."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results directory {results_dir} does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            cid = _archive(results_dir, raw, compress_level)
        # mkstemp creates 0600; the archive is meant to be downloaded, so world-readable.
        tmp.chmod(0o644)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return cid


def _write_small_archive(results_dir: Path, target: Path, compress_level: int) -> CID:
    """:func:`write_archive` for small results (``results_dir`` as :func:`_is_small` found it):
    the same bytes, built in memory and written to ``target`` at once, with no temp file to
    create and rename.

    Safe without the rename because nobody reads ``target`` before the publish ends: its
    address leaves the node only in the completion callback, committed after this returns,
    and a node that dies before that fails the execution, so a file cut short by a crash is
    never announced (the rename does not make the bytes durable either: neither syncs)."""
    data, cid = _archive_in_memory(results_dir, compress_level)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(target, flags, 0o644)
        except FileNotFoundError:  # the first archive (or the directory was removed)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, flags, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the archive is meant to be downloaded
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return cid


def _archive_in_memory(results_dir: Path, compress_level: int) -> tuple[bytes, CID]:
    """The gzip'd tar of small results built in memory (the bytes :func:`write_archive`
    writes, see :func:`gzip_whole`), and the directory's CID."""
    tar = io.BytesIO()
    cid = _tar(results_dir, tar)
    data = tar.getbuffer()
    try:
        return gzip_whole(data, compress_level), cid
    finally:
        data.release()


def _archive(results_dir: Path, raw: BinaryIO, compress_level: int) -> CID:
    """Write the gzip'd tar of ``results_dir`` to ``raw``; return the directory's CID."""
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compress_level, mtime=0) as gz:
        return _tar(results_dir, gz)


def _tar(results_dir: Path, out: BinaryIO | gzip.GzipFile) -> CID:
    """Write the tar of ``results_dir`` to ``out``; return the directory's CID."""
    with tarfile.TarFile(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_COPY_BUFFER
    ) as tar:
        inodes: dict[tuple[int, int], str] = {}  # a file's first path, for hard links

        def archive(entry: TreeEntry) -> None:
            if not entry.rel:
                return  # entries are relative to the results directory
            info = _portable_entry(tar, entry, inodes)
            if info is not None:
                content = entry.content if info.isreg() else None
                add_entry(tar, info, content, bufsize=_COPY_BUFFER)

        return Importer(None).add_path(results_dir, visitor=archive).cid


def _is_small(results_dir: Path) -> bool:
    """Whether ``results_dir`` holds only a few regular files of :data:`SMALL_RESULTS_BYTES`
    at most in all (the layout of a run that wrote little: ``stdout``, ``stderr``,
    ``exitCode``). A folder, a link or anything it cannot list is not small."""
    total = 0
    try:
        with os.scandir(results_dir) as entries:
            for n, entry in enumerate(entries):
                if n >= _SMALL_RESULTS_FILES or not entry.is_file(follow_symlinks=False):
                    return False
                total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return False
    return total <= SMALL_RESULTS_BYTES


def _portable_entry(
    tar: tarfile.TarFile, entry: TreeEntry, inodes: dict[tuple[int, int], str]
) -> tarfile.TarInfo | None:
    """The archive header of a file, folder or link, without the node's user names and IDs
    (devices and FIFOs a job left behind are not results: None).

    What ``TarFile.gettarinfo`` gives, from the ``lstat`` the importer already took and
    without its user and group name lookups, which cost more than archiving a small file.
    """
    st = entry.stat
    mode = st.st_mode
    info = tar.tarinfo(entry.rel)
    if stat.S_ISREG(mode):
        inode = (st.st_ino, st.st_dev)
        first = inodes.get(inode, entry.rel)
        if st.st_nlink > 1 and first != entry.rel:
            info.type, info.linkname = tarfile.LNKTYPE, first  # a hard link to a file archived
        else:
            info.type, info.size = tarfile.REGTYPE, st.st_size
            if inode[0]:
                inodes[inode] = entry.rel
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.path)
    else:
        return None
    info.mode = mode
    info.mtime = st.st_mtime
    return info
