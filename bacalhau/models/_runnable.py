"""What a task hands to a process must be something a process can be given.

A container's or a module's arguments, environment and working directory travel as C
strings: a NUL byte in one of them fails the run on every node (runc: "environment variable
value can't contain null"), after the job was accepted and its retries spent. The same holds
for a Docker environment entry that is not ``KEY=VALUE`` (the executor refuses it at bid
time) and for inline data that is not a ``data:`` URL, or not valid base64 (refused when a
node prepares it). These are checked at submit, naming the field, so such a job is refused
once, at once, instead of failing on each node in turn.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import param
from bacalhau.models._data_url import decode_data_url
from bacalhau.models._job import Task
from bacalhau.models._modules import referenced_module_digest
from bacalhau.models._ports import Fail

__all__ = ["check_runnable", "nul_in"]

_NUL = "\x00"
_NUL_HINT = (
    "remove the NUL character (\\u0000): a process's arguments and environment cannot hold one"
)


def nul_in(text: object) -> bool:
    """Whether ``text`` is a string holding a NUL character."""
    return isinstance(text, str) and _NUL in text


def check_runnable(task: Task, engine: str, fail: Fail) -> None:
    """Raise what ``fail`` builds for the first value of ``task`` no process could be given,
    or inline data no node could decode (``engine``: the task's engine type, lower-cased)."""
    for where, value in _process_texts(task):
        if nul_in(value):
            raise fail(f"{where} holds a NUL character", where, _NUL_HINT)
    if engine == "docker":
        env = param(task.engine.params, "EnvironmentVariables")
        for i, item in enumerate(env if isinstance(env, list) else []):
            key, sep, _ = str(item).partition("=")
            if not sep or not key:
                raise fail(
                    f"environment variable {item!r} is not of the form KEY=VALUE",
                    f"Engine.Params.EnvironmentVariables[{i}]",
                    'write "NAME=value" (an empty value is "NAME=")',
                )
    for where, url in _inline_urls(task):
        if not isinstance(url, str):
            raise fail("inline data must be a data: URL string", where, None)
        if referenced_module_digest(url) is not None:
            continue  # the requester's own reference to a module it stored
        problem = _data_url_problem(url) if len(url) <= _CACHED_URL_CHARS else _decode_problem(url)
        if problem is not None:
            raise fail(problem[0], where, problem[1])


#: Inline data up to this size has its check remembered: the same module arrives with job
#: after job, and decoding 40 KB of base64 costs a tenth of a millisecond each time.
_CACHED_URL_CHARS = 256 * 1024


@functools.lru_cache(maxsize=32)
def _data_url_problem(url: str) -> tuple[str, str | None] | None:
    return _decode_problem(url)


def _decode_problem(url: str) -> tuple[str, str | None] | None:
    """Why ``url`` is not a decodable ``data:`` URL (message, hint), or None."""
    try:
        decode_data_url(url, field="")
    except InvalidJobSpec as err:
        return err.message, err.hint
    return None


def _process_texts(task: Task) -> Iterator[tuple[str, object]]:
    """(field under the task, value) of every string that reaches a process."""
    params = task.engine.params
    for key in ("Entrypoint", "Parameters"):
        values = param(params, key)
        for i, value in enumerate(values if isinstance(values, list) else []):
            yield f"Engine.Params.{key}[{i}]", value
    env: Any = param(params, "EnvironmentVariables")
    if isinstance(env, list):
        for i, value in enumerate(env):
            yield f"Engine.Params.EnvironmentVariables[{i}]", value
    elif isinstance(env, Mapping):
        for key, value in env.items():
            yield f"Engine.Params.EnvironmentVariables.{key}", key
            yield f"Engine.Params.EnvironmentVariables.{key}", value
    yield "Engine.Params.WorkingDirectory", param(params, "WorkingDirectory")
    yield "Engine.Params.EntryPoint", param(params, "EntryPoint")
    for key, value in task.env.items():
        yield f"Env.{key}", key
        yield f"Env.{key}", value
    for i, inp in enumerate(task.input_sources):
        yield f"InputSources[{i}].Target", inp.target
    for i, rp in enumerate(task.result_paths):
        yield f"ResultPaths[{i}].Path", rp.path


def _inline_urls(task: Task) -> Iterator[tuple[str, object]]:
    """(field under the task, URL) of each inline source: the task's inputs, and the WASM
    modules given in the older object form (``EntryModule: {Source: ...}``)."""
    for i, inp in enumerate(task.input_sources):
        if inp.source.type.lower() == "inline":
            yield f"InputSources[{i}].Source.Params.URL", param(inp.source.params, "URL")
    modules: list[tuple[str, object]] = [
        ("Engine.Params.EntryModule", param(task.engine.params, "EntryModule"))
    ]
    imports = param(task.engine.params, "ImportModules")
    if isinstance(imports, list):
        modules += [(f"Engine.Params.ImportModules[{i}]", m) for i, m in enumerate(imports)]
    for where, module in modules:
        source = param(module, "Source") if isinstance(module, Mapping) else None
        if isinstance(source, Mapping) and str(param(source, "Type") or "").lower() == "inline":
            params = param(source, "Params")
            url = param(params, "URL") if isinstance(params, Mapping) else None
            yield f"{where}.Source.Params.URL", url
