"""``bacalhau job get``: download a job's published results and merge them into one folder.

Each result is downloaded into ``<out>/raw/``; ``.tar.gz``/``.tgz`` archives are extracted
there. Unless ``raw`` is asked for, the results are then merged into ``<out>``: with several
results, ``stdout``, ``stderr`` and ``exitCode`` are appended one after the other, and any
other file present in more than one result is a conflict (nothing is moved in that case).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from bacalhau.client._transport import Transport
from bacalhau.client._types import ResultsConflict, UnsupportedResult
from bacalhau.errors import InternalError
from bacalhau.models import SpecConfig, param

#: Files every result has, appended rather than conflicting when results are merged.
APPENDED_FILES = ("stdout", "stderr", "exitCode")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


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


def _file_name(url: str, index: int, taken: set[str]) -> str:
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


def _extract(archive: Path) -> Path:
    """Extract ``archive`` next to itself (into a folder named after it) and remove it."""
    name = archive.name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    target = archive.with_name(name or "result")
    target.mkdir(exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # The "data" filter refuses absolute paths, links out of the tree and devices.
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InternalError(
            f"cannot extract {archive.name}: {exc}",
            hint="the download may be incomplete; try again",
        ) from None
    archive.unlink()
    return target


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [Path(root.name)]
    return sorted(p.relative_to(root) for p in root.rglob("*") if not p.is_dir())


def merge_results(sources: list[Path], out: Path) -> None:
    """Merge result folders into ``out`` (see the module docstring). Checks every clash first
    so a conflict leaves ``out`` untouched."""
    owner: dict[Path, Path] = {}
    for src in sources:
        for rel in _files(src):
            if str(rel) in APPENDED_FILES and rel in owner:
                continue  # appended, not a clash
            if rel in owner or (out / rel).exists():
                raise ResultsConflict(
                    f"cannot merge results: {rel} is present in more than one result"
                    if rel in owner
                    else f"cannot merge results: {out / rel} already exists"
                )
            owner[rel] = src
    for src in sources:
        base = src if src.is_dir() else src.parent
        for rel in _files(src):
            source = base / rel
            dest = out / rel
            if str(rel) in APPENDED_FILES:
                with source.open("rb") as fin, dest.open("ab") as fout:
                    shutil.copyfileobj(fin, fout)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, dest)


def prepare_output(out: Path) -> tuple[Path, set[str]]:
    """Create ``<out>/raw``; returns it with the names already in it."""
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    return raw, {p.name for p in raw.iterdir()}


async def fetch_results(
    transport: Transport,
    results: list[SpecConfig],
    raw_dir: Path,
    taken: set[str],
    *,
    timeout: float,
) -> list[Path]:
    """Download every result into ``raw_dir``, extracting archives; returns one path each."""
    urls = [download_url(spec) for spec in results]  # refuse unsupported ones up front
    paths: list[Path] = []
    for i, url in enumerate(urls):
        dest = raw_dir / _file_name(url, i, taken)
        with dest.open("wb") as fh:
            await transport.download(url, fh, timeout=timeout)
        paths.append(dest)
    return paths


def unpack(paths: list[Path]) -> list[Path]:
    return [_extract(p) if p.name.endswith(_ARCHIVE_SUFFIXES) else p for p in paths]
