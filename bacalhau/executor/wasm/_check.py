"""Whether a module file can run as a job's entry module (``bacalhau wasm validate``): it
compiles, it imports nothing but WASI, and its entry point is an exported function that
takes and returns nothing, the checks Bacalhau's ``wasm validate`` made."""

from __future__ import annotations

import wasmtime

from bacalhau.errors import EntryPointNotFound, InvalidJobSpec
from bacalhau.executor.wasm._linking import foreign_imports
from bacalhau.executor.wasm._modules import check_binary
from bacalhau.executor.wasm._params import DEFAULT_ENTRY_POINT

__all__ = ["check_entry_module"]


def check_entry_module(data: bytes, entry_point: str = DEFAULT_ENTRY_POINT) -> None:
    """Raise :class:`InvalidJobSpec` (or :class:`EntryPointNotFound`) saying why the module
    ``data`` cannot run alone from ``entry_point``; return if it can."""
    check_binary(data)  # the text format would compile, but no node runs it
    try:
        module = wasmtime.Module(wasmtime.Engine(), data)
    except wasmtime.WasmtimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "it does not compile"
        if not data.startswith(b"\0asm"):
            # wasmtime read it as the text format; that error says little about a binary.
            first = "the file does not start with the WebAssembly magic number (\\0asm)"
        raise InvalidJobSpec(
            f"not a valid WebAssembly module: {first}",
            hint="build it for wasm32-wasi (e.g. clang --target=wasm32-wasi, or "
            "cargo build --target wasm32-wasip1)",
        ) from None
    foreign = foreign_imports(module)
    if foreign:
        raise InvalidJobSpec(
            "the module imports from " + ", ".join(repr(name) for name in foreign) + ", not "
            "only from WASI",
            hint="run it with those modules as import modules (bacalhau wasm run -U URL or "
            "-I CID:/path)",
        )
    found = next((e.type for e in module.exports if e.name == entry_point), None)
    if found is None:
        raise EntryPointNotFound(
            f"unable to find the entrypoint '{entry_point}' in the WASM module",
            hint="name an exported function with --entry-point (WASI programs export _start)",
        )
    if not isinstance(found, wasmtime.FuncType) or found.params or found.results:
        raise InvalidJobSpec(
            f"the entrypoint '{entry_point}' must be a function that takes no parameters "
            "and returns nothing",
            hint="export a () -> () function, such as WASI's _start",
        )
