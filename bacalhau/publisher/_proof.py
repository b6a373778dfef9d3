"""The CID of published results read back from their archive, to check a node's claim.

The ``local`` and ``s3`` publishers upload a gzip'd tar of the results directory and record
the directory's CID (``Params.CID``), computed from the same reads that filled the archive
(:func:`~bacalhau.publisher.write_archive`). :func:`archive_cid` computes that CID again from
the archive alone, streaming: each file's bytes go through the importer's push interface
(:class:`~bacalhau.storage.cid.FileBuilder`) as they are read, nothing is stored and memory
stays one chunk per open directory level. Entries are laid out as ``ipfs add -r`` would see
the directory: hidden names are left out, links stay links.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from bacalhau.storage.cid import DirectoryBuilder, Importer, ImportResult

__all__ = ["ArchiveDigest", "archive_cid"]

#: Read size when hashing a file out of the archive.
_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class ArchiveDigest:
    """What reading an archive back gave: its results' CID, or why there is none."""

    #: The CID of the results directory the archive holds ("" when not computed).
    cid: str = ""
    #: Why the archive is not a results archive at all (its publisher would not write it).
    malformed: str = ""
    #: Why it was not read to the end (larger than the limit).
    skipped: str = ""


class _TooLarge(Exception):
    """Internal: the archive went past the limit (reported as ``skipped``)."""


class _Bounded:
    """A stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise _TooLarge
        return data


def archive_cid(stream: BinaryIO, *, max_bytes: int) -> ArchiveDigest:
    """The CID of the results directory in the gzip'd tar read from ``stream`` (blocking).

    At most ``max_bytes`` are read from the stream and at most as many unpacked; beyond
    either, the digest says it was skipped. An archive that does not unpack, or whose
    entries could not come from a directory (an entry twice, a path escaping the top, a
    hard link to nothing before it) is ``malformed``.
    """
    tree = _Tree(Importer(None))
    unpacked = 0
    try:
        bounded = _Bounded(stream, max_bytes)
        with tarfile.open(fileobj=bounded, mode="r|gz") as tar:  # type: ignore[call-overload]
            for member in tar:
                name = _entry_name(member.name)
                if name is None:
                    return ArchiveDigest(malformed=f"entry {member.name!r} escapes the results")
                if any(part.startswith(".") for part in name.split("/")):
                    continue  # hidden: archived, but not part of the CID
                if member.isreg():
                    unpacked += member.size
                    if unpacked > max_bytes:
                        raise _TooLarge
                    content = tar.extractfile(member)
                    tree.add_file(name, content)
                elif member.isdir():
                    tree.add_directory(name)
                elif member.issym():
                    tree.add(name, tree.importer.add_symlink(os.fsencode(member.linkname)))
                elif member.islnk():
                    tree.add_hard_link(name, _entry_name(member.linkname) or "")
        return ArchiveDigest(cid=str(tree.finish().cid))
    except _TooLarge:
        return ArchiveDigest(skipped=f"the results are larger than the {max_bytes}-byte limit")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        return ArchiveDigest(malformed=f"the archive does not unpack: {err or type(err).__name__}")
    except ValueError as err:
        return ArchiveDigest(malformed=f"the archive's entries do not form a directory: {err}")


def _entry_name(raw: str) -> str | None:
    """An entry's path below the top (``a/b``), or None when it escapes it."""
    name = posixpath.normpath(raw)
    if name.startswith("/") or name == ".." or name.startswith("../"):
        return None
    return "" if name == "." else name


class _Tree:
    """The directory being rebuilt: the open directories from the top down to the entry
    last added, each closed (and linked into its parent) once the archive leaves it."""

    def __init__(self, importer: Importer) -> None:
        self.importer = importer
        self._open: list[tuple[str, DirectoryBuilder]] = [("", importer.directory_builder())]
        #: Files by path, for hard links (tar stores a second link to a file as a link).
        self._files: dict[str, ImportResult] = {}

    def _enter(self, parent: str) -> DirectoryBuilder:
        """The builder of directory ``parent``, closing the directories not above it and
        opening those missing below the deepest open one."""
        while len(self._open) > 1 and not _is_within(parent, self._open[-1][0]):
            self._close()
        top = self._open[-1][0]
        rest = parent[len(top) :].strip("/") if top else parent
        for part in rest.split("/") if rest else ():
            path = f"{self._open[-1][0]}/{part}" if self._open[-1][0] else part
            self._open.append((path, self.importer.directory_builder()))
        return self._open[-1][1]

    def _close(self) -> None:
        path, builder = self._open.pop()
        self._open[-1][1].add(posixpath.basename(path), builder.finish())

    def add(self, name: str, entry: ImportResult) -> None:
        if not name:
            raise ValueError("an entry names the top directory itself")
        self._enter(posixpath.dirname(name)).add(posixpath.basename(name), entry)

    def add_directory(self, name: str) -> None:
        if name:
            self._enter(name)

    def add_file(self, name: str, content: BinaryIO | None) -> None:
        builder = self.importer.file_builder()
        if content is not None:
            while chunk := content.read(_READ):
                builder.update(chunk)
        result = builder.finish()
        self._files[name] = result
        self.add(name, result)

    def add_hard_link(self, name: str, target: str) -> None:
        result = self._files.get(target)
        if result is None:
            raise ValueError(f"{name!r} links to {target!r}, which comes before it nowhere")
        self._files[name] = result
        self.add(name, result)

    def finish(self) -> ImportResult:
        while len(self._open) > 1:
            self._close()
        return self._open[0][1].finish()


def _is_within(path: str, directory: str) -> bool:
    return not directory or path == directory or path.startswith(directory + "/")
