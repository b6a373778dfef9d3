"""Where a WASM module named by a path (the v1.7+ name form) is found among a task's inputs.

Bacalhau reads ``EntryModule: "wasm.main"`` and each of ``ImportModules`` as a path in the
filesystem the module sees: every input source mounted at its ``Target``, a leading ``/``
optional. So ``wasm.main`` and ``/wasm.main`` both name the input mounted at ``/wasm.main``,
and ``inputs/lib/app.wasm`` names a file inside the input mounted at ``/inputs``. Bacalhau's
own sample job (``testdata/jobs/wasm.yaml``) relies on the first; the v1.7 migration guide's
jobs write the Target exactly. The requester's validation and the compute node's loader use
this one resolution, so a job the requester accepts is a job the compute node can load.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from bacalhau.models._codec import param

__all__ = ["MODULE_TARGET_DIR", "default_module_targets", "inputs_named_whole", "module_mount"]

#: Where a fetched WASM module named without a ``Target`` is put (see
#: :func:`default_module_targets`).
MODULE_TARGET_DIR = "/bacalhau_modules"


def module_mount(ref: str, targets: Iterable[str]) -> tuple[str, str] | None:
    """The input target holding the module ``ref`` names, and the path below it ("" for the
    target itself); None when no target holds it. The deepest target wins, as a mount
    inside another hides what lies under it."""
    parts = _parts(ref)
    if not parts:
        return None
    best: tuple[int, str, str] | None = None
    for target in targets:
        mount = _parts(target)
        if mount is None or parts[: len(mount)] != mount:
            continue
        if best is None or len(mount) > best[0]:
            best = (len(mount), target, "/".join(parts[len(mount) :]))
    return None if best is None else (best[1], best[2])


def default_module_targets(params: dict[str, Any]) -> None:
    """Give a target of its own to each WASM module of the engine ``params`` in the object
    form with a source to fetch and no ``Target`` (Bacalhau v1.5's ``wasm run CID`` writes
    ``Target: ""``): the node puts the fetched module there and the executor reads it from
    there. An inline module is read from its URL, wherever its target is."""
    modules: list[tuple[object, str]] = []
    for key, value in params.items():
        if key.lower() == "entrymodule":
            modules.append((value, "entry"))
        elif key.lower() == "importmodules" and isinstance(value, list):
            modules += [(module, f"import-{i}") for i, module in enumerate(value)]
    for module, name in modules:
        if not isinstance(module, dict):
            continue
        source = param(module, "Source")
        kind = str(param(source, "Type") or "").lower() if isinstance(source, Mapping) else ""
        if kind in ("", "inline"):
            continue
        key = next((k for k in module if k.lower() == "target"), "Target")
        if not str(module.get(key) or "").strip():
            module[key] = f"{MODULE_TARGET_DIR}/{name}.wasm"


def inputs_named_whole(refs: Iterable[str], targets: Iterable[str]) -> set[str]:
    """Of ``targets``, those a module path in ``refs`` names whole: inputs that are modules,
    not data for the module to read (a path to a file inside an input leaves it data)."""
    targets = list(targets)
    found = (module_mount(ref, targets) for ref in refs)
    return {mount[0] for mount in found if mount is not None and not mount[1]}


def _parts(path: str) -> list[str] | None:
    """The components of ``path`` below the root (none for the root itself, where a data
    input may be mounted); None for an empty path or one that climbs above the root."""
    # Cleaned as written, as Go's filepath.Clean: "/a/../../x" is "/x" (nothing is above
    # the root), but "../x" still climbs and is no path into the mounts.
    if not path.strip():
        return None
    parts = [p for p in posixpath.normpath(path.strip()).split("/") if p not in ("", ".")]
    return None if parts[:1] == [".."] else parts
