"""The ``local`` source (``localDirectory`` before Bacalhau v1.8): a host path the operator
allowed, bound into the job.

The operator lists allowed paths (``allow_listed_local_paths``; Bacalhau's
``Compute.AllowListedLocalPaths``), each read-only unless it ends with ``:rw``. An entry is
a directory (it allows itself and everything below it) or, as in Bacalhau, a glob pattern
(``/etc/*.conf``, ``/data/**``: ``*`` and ``?`` within one path component, ``**`` across
them, ``[...]`` and ``{a,b}`` as in Go's doublestar). A job's ``SourcePath`` is resolved
(every symlink and ``..`` followed) before it is compared, so neither can lead out of an
allowed path; the resolved path is what gets mounted. An entry that allows the path only
read-only does not stop the search: a later ``:rw`` entry may grant the write a job asks for.

A path that does not exist is created for a job that writes to it and says how
(``CreateAs: dir`` or ``file``, Bacalhau v1.8), once it is allowed; otherwise it is refused.
A path that is not allowed is refused when bidding, with that reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import InvalidConfiguration, InvalidJobSpec, PermissionDenied
from bacalhau.models import SpecConfig, param
from bacalhau.storage._base import PreparedPath, bool_param, str_param

_KIND = "localDirectory"
#: Bacalhau's v1.8 name of the same source (``localDirectory`` stays its alias).
LOCAL_KIND = "local"
_GLOB_CHARS = frozenset("*?[{")
_CREATE_AS = ("dir", "file", "noCreate")


@dataclass(frozen=True, slots=True)
class AllowedPath:
    """One allow-list entry: a resolved directory or a glob pattern, and whether jobs may
    write to what it allows."""

    path: Path
    writable: bool = False
    #: For a glob entry, the pattern as a regular expression over resolved paths.
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowedPath:
        """``/data`` or ``/data:rw`` (``:ro`` is the default, also accepted); globs too."""
        text, writable = entry.strip(), False
        for suffix, rw in ((":rw", True), (":ro", False)):
            if text.endswith(suffix):
                text, writable = text[: -len(suffix)], rw
        if not os.path.isabs(text):
            raise InvalidConfiguration(
                f"allow-listed local path {entry!r} is not absolute",
                details={"Field": "allow_listed_local_paths"},
            )
        if _GLOB_CHARS.intersection(text):
            return cls(Path(text), writable, re.compile(_glob_regex(text)))
        return cls(Path(os.path.realpath(text)), writable)

    def allows(self, real: Path) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(str(real)) is not None
        return real == self.path or self.path in real.parents


def _glob_regex(pattern: str) -> str:
    """A doublestar glob as a regular expression: ``**`` any depth, ``*``/``?`` within a
    component, ``[...]`` a class (``[!...]`` negated), ``{a,b}`` alternatives."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("/**", i) and (i + 3 == len(pattern) or pattern[i + 3] == "/"):
            out.append("(?:/.*)?")  # the folder itself, or anything below it
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "{" and "}" in pattern[i:]:
            end = pattern.index("}", i)
            out.append(
                "(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")"
            )
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class LocalDirectorySource:
    """Binds allow-listed host paths (read-only unless the entry and the job say rw)."""

    def __init__(self, allowed: Iterable[str | AllowedPath] = ()) -> None:
        self._allowed = [a if isinstance(a, AllowedPath) else AllowedPath.parse(a) for a in allowed]

    @property
    def name(self) -> str:
        return _KIND

    async def is_installed(self) -> bool:
        return True

    def _resolve(self, spec: SpecConfig, *, create: bool) -> PreparedPath:
        source = str_param(spec, "SourcePath", required=True)
        if not os.path.isabs(source):
            raise InvalidJobSpec(
                f"local path {source!r} must be absolute", field="Source.Params.SourcePath"
            )
        want_rw = bool_param(spec, "ReadWrite")
        create_as = _create_as(spec)
        try:
            real = Path(os.path.realpath(source, strict=True))
            missing = False
        except OSError:
            if not (want_rw and create_as in ("dir", "file")):
                raise PermissionDenied(
                    f"local path {source} is not allowed on this node (it does not exist here)",
                    hint="ask the node's operator which paths are allow-listed, or let the "
                    "job create it: ReadWrite true and CreateAs dir (or file)",
                ) from None
            real, missing = Path(os.path.realpath(source)), True
        read_only_match = False
        for entry in self._allowed:
            if not entry.allows(real):
                continue
            if want_rw and not entry.writable:
                read_only_match = True
                continue  # a later entry may allow the write
            if missing and create:
                _create(real, create_as)
            return PreparedPath(real, read_only=not want_rw)
        if read_only_match:
            raise PermissionDenied(
                f"local path {source} is allowed on this node read-only, "
                "but the job asks to write to it",
                hint="drop ReadWrite (opt=rw=true), or ask the operator for ':rw'",
            )
        shown = f"{source} (resolves to {real})" if str(real) != source else source
        raise PermissionDenied(
            f"local path {shown} is not allowed on this node",
            hint="the node's operator allow-lists paths (allow_listed_local_paths)",
        )

    async def validate(self, spec: SpecConfig) -> None:
        self._resolve(spec, create=False)

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        return self._resolve(spec, create=True)


def _create_as(spec: SpecConfig) -> str:
    value = param(spec.params, "CreateAs")
    if value in (None, ""):
        return "noCreate"
    for known in _CREATE_AS:
        if isinstance(value, str) and value.lower() == known.lower():
            return known
    raise InvalidJobSpec(
        f"CreateAs must be one of {', '.join(_CREATE_AS)}, got {value!r}",
        field="Source.Params.CreateAs",
    )


def _create(path: Path, create_as: str) -> None:
    """Make the missing ``path`` as a folder or an empty file (its parents as folders)."""
    if create_as == "dir":
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(path, "x"):
        pass
