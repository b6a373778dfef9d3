"""What a module can import: WASI preview 1 (with our replacements) and the job's own modules.

Two linkers serve every run without imports of its own, shared by all runs: the *standard*
one (wasmtime's WASI with our ``proc_exit`` and an interruptible ``poll_oneoff``) and the
*deterministic* one (the same, with clocks and entropy from ``_determinism`` and the file
system calls from ``_wasi_fs``). A job whose
modules import other modules by name (``ImportModules``) gets a linker of its own for its run,
into which each import module is instantiated, dependencies first, under its name.
"""

from __future__ import annotations

from collections.abc import Mapping

import wasmtime

from bacalhau.errors import InvalidJobSpec
from bacalhau.executor.wasm._determinism import define_deterministic
from bacalhau.executor.wasm._poll import define_poll_oneoff
from bacalhau.executor.wasm._wasi_fs import define_wasi_fs

__all__ = [
    "DETERMINISTIC",
    "STANDARD",
    "WASI_MODULE",
    "ProcExit",
    "check_imports",
    "foreign_imports",
    "instantiate_linked",
    "new_linker",
]

WASI_MODULE = "wasi_snapshot_preview1"
#: Names of the two shared linkers.
STANDARD = "standard"
DETERMINISTIC = "deterministic"


class ProcExit(Exception):
    """Raised by the module's ``proc_exit``; wasmtime unwinds the module and re-raises it."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _proc_exit(code: int) -> None:
    raise ProcExit(code & 0xFFFFFFFF)


def new_linker(engine: wasmtime.Engine, mode: str) -> wasmtime.Linker:
    """WASI as runs of ``mode`` see it (:data:`STANDARD` or :data:`DETERMINISTIC`)."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.allow_shadowing = True
    # wasmtime's own proc_exit refuses codes >= 126 (it traps, and the code is lost);
    # WASI defines the exit code as any u32, and Bacalhau reports it as such.
    linker.define_func(
        WASI_MODULE,
        "proc_exit",
        wasmtime.FuncType([wasmtime.ValType.i32()], []),
        _proc_exit,
    )
    define_poll_oneoff(linker)
    if mode == DETERMINISTIC:
        define_deterministic(linker)
        define_wasi_fs(linker)
    return linker


def instantiate_linked(
    engine: wasmtime.Engine,
    mode: str,
    store: wasmtime.Store,
    entry: wasmtime.Module,
    imports: Mapping[str, wasmtime.Module],
) -> wasmtime.Instance:
    """Instantiate ``entry`` after every module it needs, each registered under its name.

    Modules are instantiated once each, dependencies first; a name nobody provides or a cycle
    is an :class:`InvalidJobSpec` (checked before anything runs by :func:`check_imports`).
    Wasmtime errors (a missing export, a type mismatch, a trap in a start function) propagate.
    """
    linker = new_linker(engine, mode)
    done: set[str] = set()

    def instantiate(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        module = imports[name]
        for dep in foreign_imports(module):
            instantiate(dep, (*chain, name))
        linker.define_instance(store, name, linker.instantiate(store, module))
        done.add(name)

    for dep in foreign_imports(entry):
        instantiate(dep, ())
    return linker.instantiate(store, entry)


def foreign_imports(module: wasmtime.Module) -> list[str]:
    """The module names, other than WASI, that ``module`` imports from (sorted, unique)."""
    return sorted({imp.module for imp in module.imports if imp.module != WASI_MODULE})


def check_imports(
    entry: wasmtime.Module, imports: Mapping[str, wasmtime.Module], field: str
) -> None:
    """Raise :class:`InvalidJobSpec` unless every imported name is provided, with no cycle."""
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(importer: str, module: wasmtime.Module, chain: tuple[str, ...]) -> None:
        for imp in module.imports:
            name = imp.module
            if name == WASI_MODULE or state.get(name) == "done":
                continue
            if name not in imports:
                raise InvalidJobSpec(
                    f"could not find WASM module with name {name!r} "
                    f"({importer} imports {name}.{imp.name})",
                    field=field,
                    hint="add the module to ImportModules with that Alias "
                    "(`bacalhau wasm run -U URL` or `-I CID:PATH`)",
                )
            if state.get(name) == "visiting":
                cycle = " -> ".join((*chain, name))
                raise InvalidJobSpec(f"the import modules import each other: {cycle}", field=field)
            state[name] = "visiting"
            visit(name, imports[name], (*chain, name))
            state[name] = "done"

    visit("the entry module", entry, ("entry",))
