"""The ``localDirectory`` source: a host directory the operator allowed, bound into the job.

The operator lists allowed paths (``allow_listed_local_paths``; Bacalhau's
``Compute.AllowListedLocalPaths``), each read-only unless it ends with ``:rw``. A job's
``SourcePath`` is resolved (every symlink and ``..`` followed) before it is compared, so
neither can lead out of an allowed directory; the resolved path is what gets mounted. A path
that is not allowed is refused when bidding, with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import InvalidConfiguration, InvalidJobSpec, PermissionDenied
from bacalhau.models import SpecConfig
from bacalhau.storage._base import PreparedPath, bool_param, str_param

_KIND = "localDirectory"


@dataclass(frozen=True, slots=True)
class AllowedPath:
    """One allow-list entry: a resolved directory, and whether jobs may write to it."""

    path: Path
    writable: bool = False

    @classmethod
    def parse(cls, entry: str) -> AllowedPath:
        """``/data`` or ``/data:rw`` (``:ro`` is the default, also accepted)."""
        text, writable = entry.strip(), False
        for suffix, rw in ((":rw", True), (":ro", False)):
            if text.endswith(suffix):
                text, writable = text[: -len(suffix)], rw
        if not os.path.isabs(text):
            raise InvalidConfiguration(
                f"allow-listed local path {entry!r} is not absolute",
                details={"Field": "allow_listed_local_paths"},
            )
        return cls(Path(os.path.realpath(text)), writable)


class LocalDirectorySource:
    """Binds allow-listed host paths (read-only unless the entry and the job say rw)."""

    def __init__(self, allowed: Iterable[str | AllowedPath] = ()) -> None:
        self._allowed = [a if isinstance(a, AllowedPath) else AllowedPath.parse(a) for a in allowed]

    @property
    def name(self) -> str:
        return _KIND

    async def is_installed(self) -> bool:
        return True

    def _resolve(self, spec: SpecConfig) -> PreparedPath:
        source = str_param(spec, "SourcePath", required=True)
        if not os.path.isabs(source):
            raise InvalidJobSpec(
                f"local path {source!r} must be absolute", field="Source.Params.SourcePath"
            )
        want_rw = bool_param(spec, "ReadWrite")
        try:
            real = Path(os.path.realpath(source, strict=True))
        except OSError:
            raise PermissionDenied(
                f"local path {source} is not allowed on this node (it does not exist here)",
                hint="ask the node's operator which paths are allow-listed",
            ) from None
        for entry in self._allowed:
            if real == entry.path or entry.path in real.parents:
                if want_rw and not entry.writable:
                    raise PermissionDenied(
                        f"local path {source} is allowed on this node read-only, "
                        "but the job asks to write to it",
                        hint="drop ReadWrite (opt=rw=true), or ask the operator for ':rw'",
                    )
                return PreparedPath(real, read_only=not want_rw)
        shown = f"{source} (resolves to {real})" if str(real) != source else source
        raise PermissionDenied(
            f"local path {shown} is not allowed on this node",
            hint="the node's operator allow-lists paths (allow_listed_local_paths)",
        )

    async def validate(self, spec: SpecConfig) -> None:
        self._resolve(spec)

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        return self._resolve(spec)
