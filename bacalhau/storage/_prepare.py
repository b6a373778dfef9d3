"""Preparing every input of a job, concurrently, each in a directory of its own.

The inputs are the task's ``InputSources`` plus the modules a WASM engine spec names by an
input source of their own (an ``ipfs`` or ``urlDownload`` module; ``inline`` ones the WASM
executor reads straight from the spec). Input ``n`` is prepared under ``<work_dir>/<n>``, so
no source can touch another's files; when one fails the others are stopped and the caller
removes ``work_dir`` whole.

WASM modules see inputs as preopened directories, never as single files: a file input of a
WASM job (``-v CID:/data/foo.txt``) is handed over as a directory holding it under the
target's name, mounted at the target's parent, so the module opens ``/data/foo.txt``.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bacalhau.errors import BacalhauError, InvalidJobSpec
from bacalhau.models import InputSource, Job, Obj, inputs_named_whole, param
from bacalhau.models._s3_partition import Partition
from bacalhau.storage._base import PartitionedSource, PreparedInput, StorageSource, input_failed

#: The whole of every input (a job that is not partitioned).
WHOLE = Partition()


def inputs_of(job: Job) -> list[InputSource]:
    """Every input the job's task needs prepared (see the module docstring)."""
    task = job.task
    found = list(task.input_sources)
    if task.engine.type.lower() == "wasm":
        modules: list[Any] = [param(task.engine.params, "EntryModule")]
        imports = param(task.engine.params, "ImportModules")
        if isinstance(imports, list):
            modules.extend(imports)
        for n, raw in enumerate(modules):
            if not isinstance(raw, Mapping) or not raw:
                continue  # a module named by the target of a task input: prepared above
            source = InputSource.from_obj(Obj(raw, f"Engine.Params.Module[{n}]"))
            if source.source.type.lower() != "inline":
                found.append(source)
    return found


def _source_for(sources: Mapping[str, StorageSource], kind: str) -> StorageSource:
    source = sources.get(kind.lower())
    if source is None:
        raise input_failed(
            f"this node does not have the {kind!r} input source installed",
            hint="run the job on a node that offers it (see `bacalhau node describe`)",
            kind=kind,
        )
    return source


async def validate_inputs(sources: Mapping[str, StorageSource], job: Job) -> None:
    """Raise the first reason this node can never prepare one of the job's inputs."""
    for n, item in enumerate(inputs_of(job)):
        source = _source_for(sources, item.source.type)
        try:
            await source.validate(item.source)
        except InvalidJobSpec as err:
            raise InvalidJobSpec(
                err.message, field=f"InputSources[{n}].{err.field}" if err.field else ""
            ) from None


async def prepare_inputs(
    sources: Mapping[str, StorageSource],
    job: Job,
    work_dir: Path,
    partition: Partition = WHOLE,
) -> list[PreparedInput]:
    """Prepare every input under ``work_dir`` (which must exist and be empty), for the
    execution that runs ``partition`` of the job (its share of partitioned inputs)."""
    items = inputs_of(job)
    if not items:
        return []
    for item in items:
        _source_for(sources, item.source.type)  # refuse a missing plugin before any work
    wasm_file_inputs = _wasm_data_inputs(job)

    async def one(n: int, item: InputSource) -> PreparedInput:
        dest = work_dir / str(n)
        await asyncio.to_thread(dest.mkdir)
        source = _source_for(sources, item.source.type)
        try:
            if partition.count > 1 and isinstance(source, PartitionedSource):
                prepared = await source.prepare_partition(item.source, dest, partition)
            else:
                prepared = await source.prepare(item.source, dest)
        except InvalidJobSpec as err:
            raise InvalidJobSpec(
                err.message, field=f"InputSources[{n}].{err.field}" if err.field else ""
            ) from None
        except BacalhauError as err:
            # Say which input it was: a job may have several of the same type.
            name = item.alias or item.target
            if name and name not in err.message:
                err.message = f"input {name}: {err.message}"
                err.args = (err.message,)
            raise
        wrap = n < len(wasm_file_inputs) and wasm_file_inputs[n]
        if wrap and await asyncio.to_thread(prepared.path.is_file):
            # A file this input wrote itself is moved; a host file bound in place (a local
            # path) is linked, never moved.
            own = dest in prepared.path.parents
            return await asyncio.to_thread(
                _as_directory, prepared.path, item, dest, move=own, read_only=prepared.read_only
            )
        return PreparedInput(
            path=prepared.path,
            target=item.target,
            read_only=prepared.read_only,
            alias=item.alias,
        )

    tasks: list[asyncio.Task[PreparedInput]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(n, item)) for n, item in enumerate(items)]
    except BaseExceptionGroup as group_err:
        # The first deliberate error is the one to report; the others were cancelled.
        for err in group_err.exceptions:
            if isinstance(err, BacalhauError):
                raise err from None
        raise group_err.exceptions[0] from None
    return [t.result() for t in tasks]


def _wasm_data_inputs(job: Job) -> list[bool]:
    """Per task input: whether it is data a WASM module reads (not a module it is run or
    linked with, which the executor loads from the file itself)."""
    task = job.task
    if task.engine.type.lower() != "wasm":
        return []
    entry = param(task.engine.params, "EntryModule")
    imports = param(task.engine.params, "ImportModules")
    refs = [
        r for r in [entry, *(imports if isinstance(imports, list) else [])] if isinstance(r, str)
    ]
    # Named by alias, or by path (see models._module_paths).
    named = {*refs, *inputs_named_whole(refs, (item.target for item in task.input_sources))}
    return [
        item.target not in named and item.alias not in named and posixpath.isabs(item.target)
        for item in task.input_sources
    ]


def _as_directory(
    path: Path, item: InputSource, dest: Path, *, move: bool, read_only: bool
) -> PreparedInput:
    """A prepared file as a directory holding it under the target's name, for the parent.

    ``move``: the file is the input's own (downloaded), moved into the folder. Otherwise it
    is the host's (a local path): hard-linked, so a module allowed to write it writes the
    host's file as a container would; a read-only one is copied when it cannot be linked
    (another file system)."""
    target = posixpath.normpath(item.target)
    folder = dest / ".wasm-dir"
    folder.mkdir(parents=True)
    inside = folder / posixpath.basename(target)
    if move:
        path.rename(inside)
    else:
        try:
            os.link(path, inside)
        except OSError as err:
            if not read_only:
                raise input_failed(
                    f"{path} cannot be given to a WASM module as a writable file: it cannot "
                    f"be linked into the run's folder ({err.strerror})",
                    hint="mount its folder instead, or make the input read-only",
                    kind="localDirectory",
                ) from None
            shutil.copyfile(path, inside)
    return PreparedInput(
        path=folder, target=posixpath.dirname(target), read_only=read_only, alias=item.alias
    )
