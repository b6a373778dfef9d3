"""The folders a WASM run is given, and its result folders on a size-capped filesystem, as
a container's are.

A module writes through WASI straight into the folders it is given, as fast as the disk
allows, so the cap is the kernel's: the run's result folders are folders of a filesystem of
their own (:class:`bacalhau.executor._disk.CappedFolders`), preopened in place of the
ordinary ones, and copied into them once the module has stopped. A module that fills its
filesystem fails saying so, as a container does, and its results are not kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from bacalhau.errors import ExecutionFailed
from bacalhau.executor._base import RunRequest
from bacalhau.executor._disk import CappedFolders
from bacalhau.executor._results import finish_results, prepare_results_dir
from bacalhau.executor.wasm._output_times import fix_times
from bacalhau.executor.wasm._params import WasmEngineSpec
from bacalhau.executor.wasm._vfs_entries import Preopen
from bacalhau.models import RunCommandResult, format_size

__all__ = ["disk_cap", "run_capped", "run_preopens"]

#: Runs the module with its result folders preopened from the given host folders.
Run = Callable[[dict[str, Path]], Awaitable[RunCommandResult]]


def disk_cap(request: RunRequest, operator_limit: int) -> int | None:
    """The cap on the result folders: the operator's, or the job's disk when smaller (None:
    no result folders, or no limit)."""
    if not request.result_paths:
        return None
    limits = [n for n in (operator_limit, request.resources.disk) if n > 0]
    return min(limits) if limits else None


async def run_capped(
    run: Run, request: RunRequest, *, scratch: Path, cap: int, deterministic: bool
) -> RunCommandResult:
    """Run with the result folders capped at ``cap`` bytes in all (see the module doc)."""
    folders = prepare_results_dir(request.results_dir, request.result_paths)
    capped = CappedFolders.layout(scratch, request.execution_id, cap, [*folders])
    try:
        await capped.mount()
        result = await run({name: capped.source(name) for name in folders})
        if not await capped.collect(folders):
            return finish_results(
                request.results_dir,
                exit_code=result.exit_code,
                error_msg=result.error_msg
                or (
                    "disk limit exceeded: the job's result folders went past their cap of "
                    f"{format_size(cap)}"
                ),
            )
        if deterministic:
            for folder in folders.values():
                fix_times(folder)  # the copies are new files: no trace of when, again
        return result
    finally:
        await capped.release()


def run_preopens(
    spec: WasmEngineSpec,
    request: RunRequest,
    folders: dict[str, Path],
    imported: set[str],
) -> list[Preopen]:
    """The directories a run is given: result folders (writable) and inputs, as mounted."""
    preopens = []
    for rp in request.result_paths:
        host = folders[rp.name]
        preopens.append(Preopen(host, rp.path, writable=True))
        # Bacalhau mounts outputs at their Name: keep modules written for it working.
        if rp.name != rp.path:
            preopens.append(Preopen(host, rp.name, writable=True))
    modules = spec.module_targets([m.target for m in request.inputs])
    names = imported | spec.module_names()
    for mount in request.inputs:
        if mount.target in modules or (mount.alias and mount.alias in names):
            continue  # a module, already loaded
        if not mount.source.is_dir():
            raise ExecutionFailed(
                f"input {mount.target} is a single file; WASM modules can only be given "
                "directories",
                hint="give the input a directory as its target's source",
            )
        preopens.append(Preopen(mount.source, mount.target, writable=not mount.read_only))
    return preopens
