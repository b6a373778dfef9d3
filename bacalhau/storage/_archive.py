"""Unpacking a gzip'd tar from an untrusted source into one directory, and nothing else.

Entries are read as a stream. Every name is checked before anything is written: an absolute
name, one that climbs out with ``..``, a link pointing out of the directory, a device or a
FIFO refuses the whole archive (:class:`~bacalhau.errors.UnsafePath`, naming the entry). The
sizes in the headers are added up as they come, so an archive that would unpack to more than
``max_bytes`` is refused before its content is written.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import IO

from bacalhau._tarfile import tarfile
from bacalhau.errors import UnsafePath
from bacalhau.storage._base import input_failed


def _inside(name: str) -> bool:
    if not name or name.startswith("/") or "\0" in name:
        return False
    norm = posixpath.normpath(name)
    return norm != ".." and not norm.startswith("../")


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse an entry that would land (or point) outside the directory it is unpacked in."""
    if not _inside(member.name):
        raise UnsafePath(f"archive entry {member.name!r} would be written outside its directory")
    if member.issym():
        target = posixpath.join(posixpath.dirname(member.name), member.linkname)
        if member.linkname.startswith("/") or not _inside(target):
            raise UnsafePath(
                f"archive entry {member.name!r} links outside its directory "
                f"(-> {member.linkname!r})"
            )
    elif member.islnk():
        if not _inside(member.linkname):
            raise UnsafePath(
                f"archive entry {member.name!r} hard-links outside its directory "
                f"(-> {member.linkname!r})"
            )
    elif not (member.isfile() or member.isdir()):
        raise UnsafePath(f"archive entry {member.name!r} is a device or FIFO")


def extract_tar_gz(stream: IO[bytes], dest: Path, *, max_bytes: int, what: str) -> None:
    """Unpack the gzip'd tar read from ``stream`` into the existing directory ``dest``."""
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                check_member(member)
                total += member.size
                if total > max_bytes:
                    raise input_failed(
                        f"{what} unpacks to more than the limit of {max_bytes} bytes",
                        hint="send less data inline, or use an input source such as s3 or ipfs",
                        kind="inline",
                    )
                # The "data" filter is a second guard (modes, owners, link targets).
                tar.extract(member, dest, filter="data")
    except tarfile.TarError as err:
        raise input_failed(f"{what} is not a valid gzip'd tar: {err}", kind="inline") from None
    except (OSError, EOFError) as err:
        raise input_failed(f"cannot unpack {what}: {err}", kind="inline") from None
