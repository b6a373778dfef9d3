"""The compiled modules a WASM run uses: its entry module and import modules, resolved,
compiled (through the executor's cache) and checked as Bacalhau's runtime checks them."""

from __future__ import annotations

from collections.abc import Sequence

from bacalhau.errors import EntryPointNotFound, InvalidJobSpec
from bacalhau.executor._base import InputMount
from bacalhau.executor.wasm._linking import check_imports
from bacalhau.executor.wasm._modules import CompiledModule, ModuleCache
from bacalhau.executor.wasm._params import ModuleRef, WasmEngineSpec
from bacalhau.executor.wasm._source import load_module
from bacalhau.models import param

__all__ = ["inline_url", "job_modules"]


def job_modules(
    cache: ModuleCache, spec: WasmEngineSpec, inputs: Sequence[InputMount]
) -> tuple[CompiledModule, dict[str, CompiledModule]]:
    """The compiled entry module and import modules (by name), their imports checked.

    As in Bacalhau, a name no import module has resolves to the task input of that alias.
    """
    compiled = _compiled(cache, spec.entry_module, inputs)
    imports = {ref.name: _compiled(cache, ref, inputs) for ref in spec.import_modules}
    pending = [*compiled.imports, *(n for c in imports.values() for n in c.imports)]
    while pending:
        name = pending.pop()
        mount = _aliased_module(name, inputs) if name not in imports else None
        if mount is not None:
            imports[name] = cache.get(load_module(_input_module(mount), inputs))
            pending.extend(imports[name].imports)
    if compiled.imports:
        # (An entry module importing only WASI has nothing to check: reading a module's
        # imports through wasmtime costs more than the rest of a cached module's checks.)
        check_imports(
            compiled.module,
            {name: c.module for name, c in imports.items()},
            "Engine.Params.ImportModules",
        )
    arity = compiled.functions.get(spec.entry_point)
    if arity is None:
        raise EntryPointNotFound(
            f"unable to find the entrypoint '{spec.entry_point}' in the WASM module"
        )
    if arity != (0, 0):
        # As `wasm validate` and Bacalhau's runtime: () -> (), nothing else.
        raise InvalidJobSpec(
            f"the entrypoint '{spec.entry_point}' takes {arity[0]} parameters and returns "
            f"{arity[1]} results; it must take none and return nothing",
            field="Engine.Params.EntryPoint",
        )
    return compiled, imports


def inline_url(ref: ModuleRef) -> str | None:
    """The ``data:`` URL of an inline module (None for any other, or a malformed one)."""
    if ref.source is None or not ref.is_inline:
        return None
    url = param(ref.source.source.params, "URL")
    return url if isinstance(url, str) and url else None


def _compiled(cache: ModuleCache, ref: ModuleRef, inputs: Sequence[InputMount]) -> CompiledModule:
    url = inline_url(ref)
    if url is not None:
        cached = cache.inline(url)
        if cached is not None:
            return cached
    compiled = cache.get(load_module(ref, inputs))
    if url is not None:
        cache.remember_inline(url, compiled)
    return compiled


def _aliased_module(name: str, inputs: Sequence[InputMount]) -> InputMount | None:
    return next((m for m in inputs if m.alias and m.alias == name), None)


def _input_module(mount: InputMount) -> ModuleRef:
    return ModuleRef(
        name=mount.alias, target=mount.target, source=None, field="Engine.Params.ImportModules"
    )
