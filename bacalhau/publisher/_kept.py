"""Small results kept by the compute node's store, archived only when downloaded.

A short execution leaves a few small files (``stdout``, ``stderr``, ``exitCode``). Archiving
them when it is published (reading them back, hashing them into a CID, writing a tar,
compressing it, committing it to the archive store) was the dearest step of a short job on its
node, for an archive few ever download. A publisher that :class:`KeptArchives` backs does
less: it takes the files whole into memory (:func:`snapshot`), computes their CID from there
and hands them to the node's store, which keeps them in the commit that records the
execution's end. The result server builds the archive from them when it is asked for it
(:func:`kept_archive`): the entries a file archive of the same folder holds, the same bytes
at every request.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from bacalhau.publisher._tar_headers import add_entry
from bacalhau.storage.cid import CID, Importer

__all__ = [
    "KeptArchives",
    "KeptFile",
    "KeptResults",
    "decode_kept",
    "encode_kept",
    "gzip_whole",
    "kept_archive",
    "kept_cid",
    "snapshot",
]

#: Format of :func:`encode_kept`'s documents.
_FORMAT = 1
#: The levels a gzip header marks (its XFL byte), as ``GzipFile`` marks them.
_BEST, _FAST = 9, 1
#: Copy buffer of the tar writer (the files are small: one read each).
_COPY_BUFFER = 1 << 16


@dataclass(frozen=True, slots=True)
class KeptFile:
    """One regular file of a results folder, whole, with what its archive entry records."""

    name: str
    #: Permission bits (``st_mode & 0o7777``).
    mode: int
    #: Modification time as ``os.stat`` gives it (seconds, a float): the archive keeps it.
    mtime: float
    data: bytes


@dataclass(frozen=True, slots=True)
class KeptResults:
    """A results folder of a few small regular files, in the importer's order (by name)."""

    files: tuple[KeptFile, ...]

    def data_of(self, name: str) -> bytes | None:
        return next((f.data for f in self.files if f.name == name), None)


#: Where the result server finds an execution's kept results: its ID -> them, or None.
KeptSource = Callable[[str], "KeptResults | None"]


class KeptArchives:
    """Whether the node keeps small results, and where the server reads them (``source``,
    shared by the server and its publishers): set once the node's store is open, None again
    when it closes; meanwhile publishers archive as before."""

    def __init__(self) -> None:
        self.source: KeptSource | None = None


def snapshot(results_dir: Path, *, max_files: int, max_bytes: int) -> KeptResults | None:
    """The files of ``results_dir`` read whole, when it holds at most ``max_files`` regular
    files (no folders, links or hard-linked files) of ``max_bytes`` in all; None otherwise
    (or when it cannot be read)."""
    try:
        with os.scandir(results_dir) as scan:
            entries = list(scan)
        if len(entries) > max_files:
            return None
        files: list[KeptFile] = []
        total = 0
        for entry in sorted(entries, key=lambda e: os.fsencode(e.name)):
            if not _plain_name(entry.name):
                return None  # (archived as it is by the usual publish)
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or total + st.st_size > max_bytes:
                return None
            data = _read(entry.path, max_bytes - total)
            if data is None:
                return None
            total += len(data)
            files.append(KeptFile(entry.name, stat.S_IMODE(st.st_mode), st.st_mtime, data))
    except OSError:
        return None
    return KeptResults(tuple(files))


def _plain_name(name: str) -> bool:
    """A name the store's document holds as it is: printable, valid Unicode (a name that is
    not UTF-8 on disk reads back with lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return name.isprintable()


def _read(path: str, limit: int) -> bytes | None:
    """The file's bytes if there are at most ``limit`` of them, else None. It may have
    changed since it was listed: what is read is what is kept. One read: a regular file
    gives fewer bytes than asked only at its end. Opened without blocking: something put
    in the file's place since (a FIFO) must not hold the event loop."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def kept_cid(kept: KeptResults) -> CID:
    """The folder's CID, as ``Importer().add_path`` gives it for the folder on disk (hidden
    files are not part of it, as there)."""
    importer = Importer(None)
    directory = importer.directory_builder()
    for f in kept.files:
        if not f.name.startswith("."):
            directory.add(f.name, importer.add_bytes(f.data))
    return directory.finish().cid


def kept_tar(kept: KeptResults, out: io.BytesIO) -> None:
    """The uncompressed tar of the folder: what the local publisher's tar of it holds."""
    with tarfile.TarFile(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_COPY_BUFFER
    ) as tar:
        for f in kept.files:
            info = tar.tarinfo(f.name)
            info.type, info.size = tarfile.REGTYPE, len(f.data)
            info.mode = stat.S_IFREG | f.mode
            info.mtime = f.mtime
            add_entry(tar, info, io.BytesIO(f.data), bufsize=_COPY_BUFFER)


def kept_archive(kept: KeptResults, compress_level: int) -> bytes:
    """The gzip'd tar of the folder: the bytes the local publisher writes for it."""
    tar = io.BytesIO()
    kept_tar(kept, tar)
    return gzip_whole(tar.getbuffer(), compress_level)


def gzip_whole(data: memoryview, compress_level: int) -> bytes:
    """``data`` gzip'd in one call, as ``GzipFile(mtime=0)`` writes it: the same header (no
    name, no time, the level's XFL, OS unknown), the same deflate stream (zlib's output does
    not depend on how its input is split), the same trailer. A ``GzipFile`` compresses each
    of a small tar's ten or so writes (headers, contents, padding) on its own, which costs
    more than the compression itself."""
    xfl = 2 if compress_level == _BEST else 4 if compress_level == _FAST else 0
    header = struct.pack("<BBBBLBB", 0x1F, 0x8B, 8, 0, 0, xfl, 255)
    body = zlib.compress(data, compress_level, wbits=-zlib.MAX_WBITS)
    trailer = struct.pack("<LL", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer


def encode_kept(kept: KeptResults) -> bytes:
    """``kept`` as stored (:func:`decode_kept` reads it back)."""
    files = [
        [f.name, f.mode, f.mtime, base64.b64encode(f.data).decode("ascii")] for f in kept.files
    ]
    return orjson.dumps({"v": _FORMAT, "files": files})


def decode_kept(data: bytes) -> KeptResults:
    """What :func:`encode_kept` wrote; ValueError for anything else."""
    try:
        doc = orjson.loads(data)
        if doc["v"] != _FORMAT:
            raise ValueError(f"kept results of format {doc['v']!r}, not {_FORMAT}")
        return KeptResults(
            tuple(
                KeptFile(str(name), int(mode), float(mtime), base64.b64decode(text))
                for name, mode, mtime, text in doc["files"]
            )
        )
    except (KeyError, TypeError, orjson.JSONDecodeError) as err:
        raise ValueError(f"malformed kept results: {err}") from None
