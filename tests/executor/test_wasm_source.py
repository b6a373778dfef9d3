"""Inline entry modules: a gzip bomb is refused before it can take the node's memory."""

from __future__ import annotations

import base64
import functools
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.executor import InputMount, WasmExecutor
from bacalhau.executor.wasm._params import ModuleRef
from bacalhau.executor.wasm._source import MAX_MODULE_BYTES, load_module, unpack_module
from bacalhau.models import SpecConfig

#: What the bombs expand to: about the 250 MB of the one seen in the wild.
BOMB_BYTES = 250 * 1000 * 1000
#: Peak Python allocations allowed while refusing one (the limit, plus slack for one chunk).
PEAK_ALLOWED = MAX_MODULE_BYTES + (8 << 20)


def _gzip(parts: Iterator[bytes]) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [deflater.compress(part) for part in parts]
    out.append(deflater.flush())
    return b"".join(out)


def _zeros(total: int) -> Iterator[bytes]:
    chunk = bytes(1 << 20)
    while total > 0:
        yield chunk[: min(total, len(chunk))]
        total -= len(chunk)


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


@functools.cache
def tar_bomb() -> bytes:
    """A gzip'd tar of one module of BOMB_BYTES zeros, as ``bacalhau wasm run`` would send."""
    return _gzip(iter([_tar_header("main.wasm", BOMB_BYTES), *_zeros(BOMB_BYTES)]))


def module_bomb() -> bytes:
    """A gzip'd "module" of BOMB_BYTES: the WebAssembly magic, then zeros."""
    return _gzip(iter([b"\0asm\1\0\0\0", *_zeros(BOMB_BYTES)]))


def lying_tar_bomb() -> bytes:
    """A tar whose header claims a small member while the archive inflates to BOMB_BYTES."""
    return _gzip(iter([_tar_header("main.wasm", 1 << 20), *_zeros(BOMB_BYTES)]))


@contextmanager
def _peak_allocations() -> Iterator[list[int]]:
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


@pytest.mark.parametrize("bomb", [tar_bomb, module_bomb], ids=["tar", "module"])
def test_gzip_bomb_is_refused_within_bounded_memory(bomb: object) -> None:
    assert callable(bomb)
    payload = bomb()
    assert len(payload) < 1 << 20  # small on the wire
    with _peak_allocations() as peak, pytest.raises(InvalidJobSpec) as info:
        unpack_module(payload)
    assert info.value.field == "Engine.Params.EntryModule"
    assert "expands beyond" in info.value.message
    assert peak[0] < PEAK_ALLOWED


def test_a_tar_member_is_read_no_further_than_its_header_says() -> None:
    with _peak_allocations() as peak:
        # 1 MiB of zeros is no WebAssembly: compiling it refuses it, as any other bad module.
        assert unpack_module(lying_tar_bomb()) == bytes(1 << 20)
    assert peak[0] < 16 << 20


def test_small_limit_refuses_a_module_just_over_it() -> None:
    module = b"\0asm\1\0\0\0" + bytes(1000)
    assert unpack_module(_gzip(iter([module])), limit=len(module)) == module
    with pytest.raises(InvalidJobSpec):
        unpack_module(_gzip(iter([module])), limit=len(module) - 1)
    with pytest.raises(InvalidJobSpec):
        unpack_module(module, limit=len(module) - 1)


async def test_validate_refuses_a_bomb_with_the_field_at_fault() -> None:
    url = "data:application/gzip;base64," + base64.b64encode(tar_bomb()).decode()
    engine = SpecConfig(
        "wasm", {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}}}
    )
    with pytest.raises(InvalidJobSpec) as info:
        await WasmExecutor().validate(engine)
    assert info.value.field == "Engine.Params.EntryModule"


def test_a_downloaded_module_is_the_one_file_whatever_its_name(tmp_path: Path) -> None:
    # A URL need not end in .wasm: its download folder holds one file named after it.
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "hellomod").write_bytes(b"\0asm\x01\0\0\0")
    ref = ModuleRef(name="/app", target="/app", source=None, field="Engine.Params.EntryModule")
    mount = InputMount(source=folder, target="/app")
    assert load_module(ref, [mount]) == b"\0asm\x01\0\0\0"
    # Two files and no .wasm among them: which one is meant cannot be known.
    (folder / "README").write_bytes(b"notes")
    with pytest.raises(InvalidJobSpec) as caught:
        load_module(ref, [mount])
    assert "not a single file" in caught.value.message
