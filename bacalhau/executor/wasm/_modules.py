"""Compiled modules, cached by the sha256 of their bytes.

Compiling costs milliseconds to tens of milliseconds; instantiating a pre-linked module costs
microseconds. Each entry keeps the module already linked against each shared linker (an
``InstancePre`` per run mode), so a repeated job pays only for its store, its WASI context and
the run itself. A module importing other modules by name cannot be pre-linked: it is linked at
run time against the job's import modules (see ``_linking``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import wasmtime

from bacalhau.errors import InvalidJobSpec
from bacalhau.executor.wasm._linking import foreign_imports
from bacalhau.models import module_digest

_FIELD = "Engine.Params.EntryModule"


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """A module ready to instantiate, and what it exports."""

    digest: str
    module: wasmtime.Module
    #: Linker name -> the module pre-linked against it; empty when it imports other modules.
    pres: dict[str, wasmtime.InstancePre]
    #: Exported function name -> how many parameters it takes and results it returns.
    functions: dict[str, tuple[int, int]]
    #: Module names other than WASI that it imports from.
    imports: list[str]


@dataclass(frozen=True, slots=True)
class ModuleCacheStats:
    hits: int
    misses: int
    size: int
    capacity: int


class ModuleCache:
    """A thread-safe LRU of :class:`CompiledModule` for one engine and its shared linkers."""

    def __init__(
        self, engine: wasmtime.Engine, linkers: Mapping[str, wasmtime.Linker], capacity: int
    ) -> None:
        if capacity < 1:
            raise ValueError("module cache capacity must be at least 1")
        self._engine = engine
        self._linkers = dict(linkers)
        self._capacity = capacity
        self._entries: OrderedDict[str, CompiledModule] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        #: The digest of an inline module's ``data:`` URL (``module_digest``, which tells a
        #: URL seen lately without hashing it again) -> the digest of the module it decodes
        #: to, so a repeated inline module is found without decoding it (oldest first out).
        self._by_url: OrderedDict[str, str] = OrderedDict()

    def stats(self) -> ModuleCacheStats:
        with self._lock:
            return ModuleCacheStats(self._hits, self._misses, len(self._entries), self._capacity)

    def peek_inline(self, url: str) -> CompiledModule | None:
        """What :meth:`inline` would return, nothing counted or moved."""
        key = self._url_key(url)
        with self._lock:
            digest = self._by_url.get(key)
            return self._entries.get(digest) if digest is not None else None

    def inline(self, url: str) -> CompiledModule | None:
        """The compiled module an inline ``data:`` URL seen before (:meth:`remember_inline`)
        decodes to, if still cached: hashing the URL costs a fifth of decoding it."""
        key = self._url_key(url)
        with self._lock:
            digest = self._by_url.get(key)
            entry = self._entries.get(digest) if digest is not None else None
            if entry is None:
                return None
            self._entries.move_to_end(entry.digest)
            self._by_url.move_to_end(key)
            self._hits += 1
            return entry

    def remember_inline(self, url: str, entry: CompiledModule) -> None:
        """Note that ``url`` decodes to ``entry``'s module (found by :meth:`inline` next)."""
        key = self._url_key(url)
        with self._lock:
            self._by_url[key] = entry.digest
            while len(self._by_url) > self._capacity:
                self._by_url.popitem(last=False)

    @staticmethod
    def _url_key(url: str) -> str:
        return module_digest(url)

    def get(self, wasm: bytes) -> CompiledModule:
        """The compiled form of ``wasm``, compiling it on a miss (call from a worker thread)."""
        digest = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
                self._hits += 1
                return entry
            self._misses += 1
        # Compiled outside the lock: other modules' runs must not wait for this compile. Two
        # threads missing on the same module both compile it; the second result is dropped.
        entry = self._compile(digest, wasm)
        with self._lock:
            existing = self._entries.get(digest)
            if existing is not None:
                return existing
            self._entries[digest] = entry
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return entry

    def _compile(self, digest: str, wasm: bytes) -> CompiledModule:
        check_binary(wasm)
        try:
            module = wasmtime.Module(self._engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise InvalidJobSpec(
                f"the entry module is not a valid WebAssembly module: {wasm_error_cause(e)}",
                field=_FIELD,
                hint="pass a .wasm file compiled for WASI (e.g. clang --target=wasm32-wasi)",
            ) from e
        imports = foreign_imports(module)
        pres: dict[str, wasmtime.InstancePre] = {}
        if not imports:
            try:
                for name, linker in self._linkers.items():
                    pres[name] = linker.instantiate_pre(module)
            except wasmtime.WasmtimeError as e:
                raise InvalidJobSpec(
                    "the WASM module needs an import this node does not provide: "
                    f"{wasm_error_cause(e)}",
                    field=_FIELD,
                    hint="modules may import WASI preview 1 (wasi_snapshot_preview1) and the "
                    "job's ImportModules",
                ) from e
        functions = {
            export.name: (len(export.type.params), len(export.type.results))
            for export in module.exports
            if isinstance(export.type, wasmtime.FuncType)
        }
        return CompiledModule(
            digest=digest, module=module, pres=pres, functions=functions, imports=imports
        )


#: The first bytes of every WebAssembly binary (wasmtime would also take the text format).
WASM_MAGIC = b"\0asm"


def check_binary(wasm: bytes) -> None:
    """Refuse what is not a WebAssembly binary, as Bacalhau's runtime (wazero) does: the
    text format (``.wat``) compiles in wasmtime, but a job file meant for Bacalhau cannot
    count on it."""
    if not wasm.startswith(WASM_MAGIC):
        what = (
            "it is WebAssembly text (.wat)"
            if wasm.lstrip()[:1] == b"("
            else "it does not start with the WebAssembly magic number (\\0asm)"
        )
        raise InvalidJobSpec(
            f"the entry module is not a WebAssembly binary: {what}",
            field=_FIELD,
            hint="pass a compiled .wasm file (wat2wasm turns the text format into one)",
        )


def wasm_error_cause(e: BaseException) -> str:
    """The innermost reason of a wasmtime error, on one line."""
    text = str(e).strip()
    if "Caused by:" in text:
        text = text.rsplit("Caused by:", 1)[1]
    return " ".join(text.split())
