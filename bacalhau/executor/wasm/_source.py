"""Getting the bytes of the entry module and of the modules it imports.

An ``inline`` module carries the module in an RFC 2397 ``data:`` URL: the plain base64
of the ``.wasm`` file or, as the Bacalhau CLI sends anything over 512 bytes, a gzip'd tar
holding it. Any other source type (and a module named by the v1.7 name form) is fetched by
the node's storage plugins like every other input and handed over as a prepared input mounted
at the module's ``Target``.

A gzip'd payload is inflated as a stream that refuses to produce more than
:data:`MAX_MODULE_BYTES`, and a tar is read as a stream whose member sizes are checked from
their headers, so a small "gzip bomb" is refused before it can take the node's memory.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol, cast

from bacalhau.errors import ExecutionFailed, InvalidJobSpec
from bacalhau.executor._base import InputMount
from bacalhau.executor.wasm._params import ModuleRef
from bacalhau.models import decode_data_url, module_mount, param

WASM_MAGIC = b"\0asm"
_GZIP_MAGIC = b"\x1f\x8b"
#: The largest entry module (and decompressed inline archive) a node accepts.
MAX_MODULE_BYTES = 64 * 1024 * 1024
_FIELD = "Engine.Params.EntryModule"
_TAR_BLOCK = 512
_INFLATE_CHUNK = 1024 * 1024


def load_module(module: ModuleRef, inputs: Sequence[InputMount]) -> bytes:
    """The bytes of a module the spec names (not yet validated as WebAssembly)."""
    if module.source is not None and module.is_inline:
        url = param(module.source.source.params, "URL")
        if not isinstance(url, str) or not url:
            raise InvalidJobSpec(
                "inline module needs a data URL", field=f"{module.field}.Source.Params.URL"
            )
        return unpack_module(decode_data_url(url, field=f"{module.field}.Source.Params.URL"))
    for mount in inputs:
        if module.target and mount.target == module.target:
            return _read_prepared(mount.source)
    if module.source is None:
        return _read_prepared(_named_module_path(module, inputs))
    raise InvalidJobSpec(
        f"module source {module.source.source.type!r} was not prepared on this node",
        field=f"{module.field}.Source.Type",
        hint="use an inline module, or a source type this node's storage supports",
    )


def unpack_module(blob: bytes, *, limit: int = MAX_MODULE_BYTES) -> bytes:
    """The module itself out of a plain, gzip'd, tar'd or gzip'd-tar payload.

    Never holds more than about ``limit`` decompressed bytes: past it, the payload is refused
    with :class:`InvalidJobSpec`.
    """
    if blob.startswith(_GZIP_MAGIC):
        reader: _Reader = _BoundedInflater(blob, limit)
    else:
        if len(blob) > limit:
            raise _too_large(limit)
        reader = io.BytesIO(blob)
    head = _read_exactly(reader, _TAR_BLOCK)
    if head.startswith(WASM_MAGIC) or not _is_tar_header(head):
        # Not an archive: the module itself (validation says so if it is no WebAssembly).
        return head + _read_rest(reader)
    return _module_from_tar(_Prepended(head, reader), limit)


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _BoundedInflater:
    """Reads the gunzipped form of ``blob``, refusing to produce more than ``limit`` bytes."""

    def __init__(self, blob: bytes, limit: int) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._tail = blob
        self._limit = limit
        self.produced = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            size = _INFLATE_CHUNK
        parts: list[bytes] = []
        got = 0
        while got < size and not self._inflater.eof:
            try:
                chunk = self._inflater.decompress(self._tail, min(size - got, _INFLATE_CHUNK))
            except zlib.error as e:
                raise InvalidJobSpec(
                    f"the inline entry module is not valid gzip: {e}", field=_FIELD
                ) from e
            self._tail = self._inflater.unconsumed_tail
            if not chunk:
                break  # input exhausted: a truncated stream ends here
            self.produced += len(chunk)
            if self.produced > self._limit:
                raise _too_large(self._limit)
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)


class _Prepended:
    """``head`` followed by the rest of ``reader``: tarfile's stream mode reads from it."""

    def __init__(self, head: bytes, reader: _Reader) -> None:
        self._head = head
        self._reader = reader

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                out, self._head = self._head, b""
                more = self._reader.read(size - len(out)) if size > len(out) else b""
                return out + more
            out, self._head = self._head[:size], self._head[size:]
            return out
        return self._reader.read(size)


def _read_exactly(reader: _Reader, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = reader.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_rest(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    while chunk := reader.read(_INFLATE_CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def _is_tar_header(block: bytes) -> bool:
    if len(block) < _TAR_BLOCK:
        return False
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _module_from_tar(stream: _Reader, limit: int) -> bytes:
    files: list[tuple[str, bytes]] = []
    try:
        # Stream mode reads forward only, through read(); the stubs ask for a whole file.
        with tarfile.open(fileobj=cast("IO[bytes]", stream), mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                # Checked from the header, before a byte of the member is inflated.
                if member.size > limit:
                    raise _too_large(limit)
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise InvalidJobSpec(f"cannot read {member.name!r} from the inline archive")
                files.append((member.name, extracted.read()))
    except tarfile.TarError as e:
        raise InvalidJobSpec(f"the inline archive is not a valid tar: {e}", field=_FIELD) from e
    wasm = [f for f in files if f[0].endswith(".wasm")]
    chosen = wasm if wasm else files
    if len(chosen) != 1:
        raise InvalidJobSpec(
            f"the inline archive must hold exactly one .wasm file, found {len(chosen)}",
            field=_FIELD,
        )
    return chosen[0][1]


def _too_large(limit: int) -> InvalidJobSpec:
    return InvalidJobSpec(
        f"the inline entry module expands beyond {limit} bytes",
        field=_FIELD,
        hint=f"entry modules may be at most {limit // (1024 * 1024)} MiB once decompressed",
    )


def _named_module_path(module: ModuleRef, inputs: Sequence[InputMount]) -> Path:
    """Where the module a name names lies among the prepared inputs: the input whose
    ``Alias`` it is, else a path (see ``models._module_paths``); never outside the input
    that holds it."""
    aliased = next((m for m in inputs if m.alias and m.alias == module.target), None)
    if aliased is not None:
        return aliased.source
    targets = [m.target for m in inputs]
    found = module_mount(module.target, targets)
    if found is None:
        mounted = ", ".join(sorted(targets)) or "none"
        raise InvalidJobSpec(
            f"no input of the task is mounted at {module.target!r} or above it (inputs "
            f"mounted: {mounted})",
            field=module.field,
            hint="name a module by the Target of one of the task's input sources, or a path "
            "below it",
        )
    target, below = found
    root = next(m.source for m in inputs if m.target == target)
    if not below:
        return root
    path = (root / below).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidJobSpec(
            f"{module.target!r} leads out of the input mounted at {target}",
            field=module.field,
        )
    return path


def _read_prepared(source: Path) -> bytes:
    try:
        return _read_module_file(source)
    except OSError as e:
        raise ExecutionFailed(f"cannot read the prepared entry module: {e}") from e


def _read_module_file(source: Path) -> bytes:
    if source.is_dir():
        candidates = sorted(p for p in source.rglob("*.wasm") if p.is_file())
        if not candidates:
            # A URL need not end in .wasm (Bacalhau loads the one file it downloaded): a
            # folder holding a single file holds the module, whatever its name.
            candidates = [p for p in source.rglob("*") if p.is_file()]
            if len(candidates) > 1:
                candidates = []
        if len(candidates) != 1:
            raise InvalidJobSpec(
                f"the prepared entry module holds {len(candidates) or 'no'} .wasm files and "
                "is not a single file: expected one module",
                field=_FIELD,
                hint="name the module's file, e.g. /app/main.wasm, or give one file alone",
            )
        source = candidates[0]
    if source.stat().st_size > MAX_MODULE_BYTES:
        raise InvalidJobSpec(f"the entry module is larger than {MAX_MODULE_BYTES} bytes")
    return source.read_bytes()
