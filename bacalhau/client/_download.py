"""``bacalhau job get``: download a job's published results and merge them into one folder.

Each result is downloaded into ``<out>/raw/``; ``.tar.gz``/``.tgz`` archives are extracted
there. A result published to ``ipfs`` is fetched by its CID through the requester's data API
(``GET /api/v1/data/{cid}?format=tar``; the requester gets the blocks from the node that holds
them) and extracted into ``<out>/raw/<CID>`` under the same rules. Unless ``raw`` is asked
for, the results are then merged into ``<out>``: with several results, ``stdout``,
``stderr`` and ``exitCode`` are appended one after the other, and any other file present in
more than one result is a conflict (nothing is moved in that case).

Links a job left in its output folders arrive as links (the node archives them without
following them). A symbolic link is created only when it stays inside its result: a link to
an absolute path, one that climbs out with ``..``, one that goes through another link, and
anything inside a linked folder are skipped, and reported in :class:`DownloadedResults` so
the caller can name them; the rest of the result is delivered. An archive whose own entry
names climb out of the folder is malformed and refused whole.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, TypeAlias
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from bacalhau._processes import pid_alive
from bacalhau._tarfile import tarfile
from bacalhau.client._types import ResultOverwritten, ResultsConflict, UnsupportedResult
from bacalhau.errors import BacalhauError, InternalError, Unavailable
from bacalhau.models import RESULT_CID_METADATA, SpecConfig, param

#: Files every result has, appended rather than conflicting when results are merged.
APPENDED_FILES = ("stdout", "stderr", "exitCode")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
#: Suffix of a result fetched by CID: an uncompressed tar whose entries lie under the CID.
CID_TAR_SUFFIX = ".cid.tar"


class NoResults(BacalhauError):
    """The job has published no results (it failed, was stopped, is still running, or its
    publisher keeps nothing)."""

    code = "NoResults"
    http_status = 404
    default_component = "Client"
    default_hint = "`bacalhau job describe <id>` shows the job's state and history"


class SkipReason(StrEnum):
    """Why an archive entry was not created on the client."""

    ABSOLUTE_LINK = "link to an absolute path"
    ESCAPING_LINK = "link pointing outside the results"
    LINK_THROUGH_LINK = "link that goes through another link"
    INSIDE_LINK = "inside a linked folder"
    LAYOUT_LINK = "results layout file that is a link"
    DANGLING_HARD_LINK = "hard link to an entry that is not a regular file of the result"
    SPECIAL_FILE = "device, FIFO or other special file"


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An archive entry that was not created: its path in the result, where it pointed (for a
    link) and why."""

    path: str
    reason: SkipReason
    target: str = ""

    def __str__(self) -> str:
        arrow = f" -> {self.target}" if self.target else ""
        return f"{self.path}{arrow} ({self.reason})"


@dataclass(frozen=True, slots=True)
class DownloadedResults:
    """Where ``job get`` wrote the results, and what it left out."""

    path: Path
    skipped: tuple[SkippedEntry, ...] = field(default=())


def download_url(spec: SpecConfig) -> str:
    kind = spec.type.lower()
    key = {"urldownload": "URL", "s3presigned": "PreSignedURL"}.get(kind)
    url = param(spec.params, key) if key else None
    if not isinstance(url, str) or not url:
        raise UnsupportedResult(
            f"cannot download a result published as {spec.type!r}",
            hint="results published with the local publisher (-p local) download over HTTP",
        )
    return url


def check_downloadable(spec: SpecConfig) -> None:
    """Refuse, before anything is downloaded, a result this client cannot fetch."""
    kind = spec.type.lower()
    if kind == "s3":
        if not (param(spec.params, "Bucket") and param(spec.params, "Key")):
            raise UnsupportedResult("an s3 result without Bucket and Key cannot be downloaded")
        return
    if kind == "ipfs":
        cid = param(spec.params, "CID")
        if not isinstance(cid, str) or not cid or "/" in cid or cid in (".", ".."):
            raise UnsupportedResult(f"an ipfs result without a valid CID ({cid!r})")
        return
    download_url(spec)


class Progress:
    """A binary file that reports what is written to a progress bar on a terminal (none
    when stderr is not one, and only for downloads that take more than a moment)."""

    def __init__(self, fh: BinaryIO, name: str) -> None:
        self._fh = fh
        self._bar = tqdm(
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None,  # None: off when not a terminal
            delay=1.0,  # small downloads never show a bar
            leave=False,
            file=sys.stderr,
        )

    def write(self, data: bytes) -> int:
        self._bar.update(len(data))
        return self._fh.write(data)

    def close(self) -> None:
        self._bar.close()


def s3_download(spec: SpecConfig, dest: Path) -> None:
    """Fetch an ``s3`` result with this client's own AWS credentials: the archive object,
    or every object under the prefix of a plain result (into folder ``dest``)."""
    # boto3 is imported here: it takes a while to load and most commands never need it.
    import boto3
    import botocore.config
    import botocore.exceptions

    bucket = str(param(spec.params, "Bucket"))
    key = str(param(spec.params, "Key"))
    endpoint = param(spec.params, "Endpoint") or None
    region = param(spec.params, "Region") or None
    config = botocore.config.Config(s3={"addressing_style": "path"}) if endpoint else None
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region or "us-east-1", config=config
    )
    try:
        if not key.endswith("/"):
            client.download_file(bucket, key, str(dest))
            stamped = client.head_object(Bucket=bucket, Key=key).get("Metadata", {})
            check_stamp(spec, stamped.get(RESULT_CID_METADATA))
            return
        dest.mkdir()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                name = _inside_name(obj["Key"][len(key) :])
                if name is None or name == ".":
                    raise InternalError(f"s3 result object {obj['Key']!r} is outside the result")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(target))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        raise Unavailable(
            f"cannot download s3://{bucket}/{key}: {err}",
            hint="this client downloads S3 results with its own AWS credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
        ) from None


def check_stamp(spec: SpecConfig, stamped: str | None) -> None:
    """Refuse an archived S3 result whose object now holds other content than the one its
    execution published: its stamp (the CID it was published with) differs from the CID
    the execution recorded. Objects without a stamp (published elsewhere) pass."""
    recorded = param(spec.params, "CID")
    if not stamped or not isinstance(recorded, str) or not recorded or stamped == recorded:
        return
    where = f"s3://{param(spec.params, 'Bucket')}/{param(spec.params, 'Key')}"
    raise ResultOverwritten(
        f"the result at {where} was overwritten: it holds content {stamped}, not the "
        f"{recorded} this execution published"
    )


def file_name(url: str, index: int, taken: set[str]) -> str:
    name = posixpath.basename(unquote(urlparse(url).path)) or f"result-{index}"
    name = name.replace(os.sep, "_")
    if name in (".", ".."):
        name = f"result-{index}"
    base, n = name, 1
    while name in taken:
        name = f"{n}-{base}"
        n += 1
    taken.add(name)
    return name


def _inside_name(raw: str) -> str | None:
    """``raw`` normalised relative to the result root, or None when it is absolute or climbs
    out of it."""
    if raw.startswith("/") or "\0" in raw:
        return None
    name = posixpath.normpath(raw)
    if name == ".." or name.startswith("../"):
        return None
    return name


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _link_verdict(name: str, target: str, links: set[str]) -> SkipReason | None:
    """Whether the symbolic link ``name -> target`` may be created: None if it stays inside.

    Walks the target one component at a time from the link's folder, as the kernel would,
    but refuses to step through any other link of the archive: ``a -> .`` and
    ``b -> a/a/..`` would otherwise climb out although the text of ``b`` looks inside.
    """
    if target.startswith("/"):
        return SkipReason.ABSOLUTE_LINK
    if not target or "\0" in target:
        return SkipReason.ESCAPING_LINK
    here = name.split("/")[:-1]
    parts = target.split("/")
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return SkipReason.ESCAPING_LINK
            here.pop()
            continue
        here.append(part)
        if i < len(parts) - 1 and "/".join(here) in links:
            return SkipReason.LINK_THROUGH_LINK
    return None


@dataclass(slots=True)
class _Plan:
    entries: list[tarfile.TarInfo] = field(default_factory=list)
    links: list[tarfile.TarInfo] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


#: Where a job's result folders were mounted while it ran: (folder name, path in the task),
#: e.g. ("out", "/outputs"); read from the job's ``ResultPaths``.
ResultMounts: TypeAlias = Sequence[tuple[str, str]]


def _link_into_results(name: str, target: str, mounts: ResultMounts) -> str:
    """An absolute link target that names a place inside a result folder as the task saw it
    (``/outputs/data.txt`` for the folder ``out`` mounted at ``/outputs``), as the relative
    target that reaches the same place in the downloaded results; other targets as they are.
    """
    if not target.startswith("/"):
        return target
    norm = posixpath.normpath(target)
    for folder, path in mounts:
        mount = posixpath.normpath(path)
        if mount != "/" and (norm == mount or norm.startswith(mount + "/")):
            inside = folder + norm[len(mount) :]
            return posixpath.relpath(inside, posixpath.dirname(name) or ".")
    return target


def plan_extraction(members: list[tarfile.TarInfo], mounts: ResultMounts = ()) -> _Plan:
    """Decide, from the archive's entries alone, what to create (files and folders first,
    symbolic links last, so nothing is ever written through a link) and what to skip.
    ``mounts``: where the result folders were in the task, so that an absolute link into
    one is kept as the relative link it amounts to."""
    plan = _Plan()
    names: dict[int, str] = {}
    for i, m in enumerate(members):
        name = _inside_name(m.name)
        if name is None or (name == "." and not m.isdir()):
            raise InternalError(
                f"result archive entry {m.name!r} is outside the result folder",
                hint="the archive is malformed or hostile; nothing of it was written",
            )
        names[i] = name
        if m.issym() and mounts:
            m.linkname = _link_into_results(name, m.linkname, mounts)
    links = {names[i] for i, m in enumerate(members) if m.issym()}
    verdicts: dict[int, SkipReason | None] = {}
    for i, m in enumerate(members):
        if not m.issym():
            continue
        name = names[i]
        if any(a in links for a in _ancestors(name)):
            verdicts[i] = SkipReason.INSIDE_LINK
        elif name in APPENDED_FILES:
            verdicts[i] = SkipReason.LAYOUT_LINK
        else:
            verdicts[i] = _link_verdict(name, m.linkname, links)
    created_links = {names[i] for i, v in verdicts.items() if v is None}
    regular: set[str] = set()
    for i, m in enumerate(members):
        name = names[i]
        reason: SkipReason | None = None
        if m.issym():
            reason = verdicts[i]
        elif any(a in links for a in _ancestors(name)):
            reason = SkipReason.INSIDE_LINK
        elif name in created_links:
            continue  # the same name arrives later as a link, which replaces it
        elif m.islnk():
            if _inside_name(m.linkname) not in regular:
                reason = SkipReason.DANGLING_HARD_LINK
        elif not (m.isfile() or m.isdir()):
            reason = SkipReason.SPECIAL_FILE
        if reason is not None:
            link = m.linkname if (m.issym() or m.islnk()) else ""
            plan.skipped.append(SkippedEntry(name, reason, link))
            continue
        if m.issym():
            plan.links.append(m)
        else:
            if m.isfile():
                regular.add(name)
            plan.entries.append(m)
    return plan


def _strip_root(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """Rename the entries of a tar from the data API (one directory named by the CID, then
    what lies under it) relative to that directory, refusing any entry outside it."""
    root = members[0].name if members and members[0].isdir() else ""
    if not root or "/" in root or root in (".", ".."):
        raise InternalError(
            "a result fetched by CID is not one directory",
            hint="a result published to ipfs is a directory; the requester sent something else",
        )
    for m in members:
        if m.name == root and m.isdir():
            m.name = "."
        elif m.name.startswith(root + "/"):
            m.name = m.name[len(root) + 1 :]
        else:
            raise InternalError(
                f"result {root}: tar entry {m.name!r} is outside the result directory",
                hint="the requester sent a malformed archive",
            )
    return members


def _extract(archive: Path, mounts: ResultMounts = ()) -> tuple[Path, list[SkippedEntry]]:
    """Extract ``archive`` next to itself (into a folder named after it) and remove it."""
    name = archive.name
    by_cid = name.endswith(CID_TAR_SUFFIX)
    for suffix in (*_ARCHIVE_SUFFIXES, CID_TAR_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    target = archive.with_name(name or "result")
    target.mkdir(exist_ok=True)
    try:
        with tarfile.open(archive, "r:" if by_cid else "r:gz") as tar:
            members = tar.getmembers()
            if by_cid:
                members = _strip_root(members)
            plan = plan_extraction(members, mounts)
            # The "data" filter stays as a second guard (modes, paths, link targets).
            tar.extractall(target, members=plan.entries, filter="data")
            tar.extractall(target, members=plan.links, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InternalError(
            f"cannot extract {archive.name}: {exc}",
            hint="the download may be incomplete; try again",
        ) from None
    archive.unlink()
    return target, plan.skipped


def _files(root: Path) -> list[Path]:
    """Every file and link under ``root`` (relative), never following a link."""
    if root.is_file() or root.is_symlink():
        return [Path(root.name)]
    found: list[Path] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                else:
                    found.append(path.relative_to(root))
    return sorted(found)


def _empty_folders(root: Path) -> list[Path]:
    """Every empty folder under ``root`` (relative), never following a link."""
    if not root.is_dir() or root.is_symlink():
        return []
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        if not dirs and not files and Path(folder) != root:
            found.append(Path(folder).relative_to(root))
    return found


def merge_results(sources: list[Path], out: Path) -> None:
    """Merge result folders into ``out`` (see the module docstring). Checks every clash first
    so a conflict leaves ``out`` untouched."""
    owner: dict[Path, Path] = {}
    for src in sources:
        for rel in _files(src):
            if str(rel) in APPENDED_FILES and rel in owner:
                continue  # appended, not a clash
            if rel in owner or os.path.lexists(out / rel):
                raise ResultsConflict(
                    f"cannot merge results: {rel} is present in more than one result"
                    if rel in owner
                    else f"cannot merge results: {out / rel} already exists"
                )
            owner[rel] = src
    for rel in owner:
        # A file of one result under a file or link of another: moving it there would write
        # through that link.
        for parent in rel.parents:
            if parent in owner:
                raise ResultsConflict(
                    f"cannot merge results: {rel} lies under {parent} of another result"
                )
    empty = sorted({rel for src in sources for rel in _empty_folders(src)})
    for rel in empty:
        if os.path.lexists(out / rel) and not (out / rel).is_dir():
            raise ResultsConflict(f"cannot merge results: {out / rel} already exists")
    for src in sources:
        base = src if src.is_dir() and not src.is_symlink() else src.parent
        for rel in _files(src):
            source = base / rel
            dest = out / rel
            if str(rel) in APPENDED_FILES:
                with source.open("rb") as fin, dest.open("ab") as fout:
                    shutil.copyfileobj(fin, fout)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, dest)
    for rel in empty:
        # A folder the job left empty is part of its results too (files alone would lose it).
        (out / rel).mkdir(parents=True, exist_ok=True)


def missing_folders(out: Path) -> list[Path]:
    """The folders a download into ``out`` creates (``out`` and its missing parents' first
    one, and ``out/raw``), deepest first: what a failed download removes again if empty."""
    missing = [out / "raw"]
    for folder in (out, *out.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


#: Staging folders are named ``.download-<host>-<pid>-<random>``: a later download can tell
#: one whose process died (killed mid-download) from one another download still fills.
_STAGING = ".download-"


def staging_folder(raw_dir: Path) -> Path:
    """A fresh hidden folder under ``raw_dir`` to fetch and unpack into. Those left by
    downloads on this host whose process is gone are removed first."""
    host = _host_tag()
    for entry in raw_dir.glob(f"{_STAGING}{host}-*"):
        pid = entry.name[len(_STAGING) + len(host) + 1 :].partition("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_STAGING}{host}-{os.getpid()}-", dir=raw_dir))


def _host_tag() -> str:
    # Results folders may be shared between hosts: a process number means something only
    # on the host that wrote it.
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def adopt(entries: list[Path], into: Path) -> None:
    """Move ``entries`` into ``into``, each under its name, or with ``-2``, ``-3``... when a
    result of an earlier download already has it."""
    for entry in entries:
        dest = into / entry.name
        n = 2
        while os.path.lexists(dest):
            dest = into / f"{entry.name}-{n}"
            n += 1
        os.replace(entry, dest)


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` that exists and is empty, in order (deepest first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def prepare_output(out: Path) -> tuple[Path, set[str]]:
    """Create ``<out>/raw``; returns it with the names already in it."""
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    return raw, {p.name for p in raw.iterdir()}


def unpack(paths: list[Path], mounts: ResultMounts = ()) -> tuple[list[Path], list[SkippedEntry]]:
    """Extract the archives among ``paths``; returns one folder or file per result and the
    entries skipped across all of them."""
    unpacked: list[Path] = []
    skipped: list[SkippedEntry] = []
    for p in paths:
        if p.name.endswith((*_ARCHIVE_SUFFIXES, CID_TAR_SUFFIX)):
            folder, left_out = _extract(p, mounts)
            unpacked.append(folder)
            skipped.extend(left_out)
        else:
            unpacked.append(p)
    return unpacked, skipped
