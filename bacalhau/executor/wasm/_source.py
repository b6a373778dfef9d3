"""Getting the bytes of the entry module.

An ``inline`` entry module carries the module in an RFC 2397 ``data:`` URL: the plain base64
of the ``.wasm`` file or, as the Bacalhau CLI sends anything over 512 bytes, a gzip'd tar
holding it. Any other source type is fetched by the node's storage plugins like every other
input and handed over as a prepared input whose target is the entry module's ``Target``.
"""

from __future__ import annotations

import binascii
import io
import tarfile
import urllib.parse
import zlib
from collections.abc import Sequence
from pathlib import Path

from bacalhau.errors import ExecutionFailed, InvalidJobSpec
from bacalhau.executor._base import InputMount
from bacalhau.models import InputSource, param

WASM_MAGIC = b"\0asm"
_GZIP_MAGIC = b"\x1f\x8b"
#: Decompressed size cap for inline archives: a small data URL must not expand without bound.
MAX_MODULE_BYTES = 256 * 1024 * 1024
_FIELD = "Engine.Params.EntryModule"


def load_entry_module(module: InputSource, inputs: Sequence[InputMount]) -> bytes:
    """The entry module's bytes (not yet validated as WebAssembly)."""
    kind = module.source.type.lower()
    if kind == "inline":
        url = param(module.source.params, "URL")
        if not isinstance(url, str) or not url:
            raise InvalidJobSpec(
                "inline entry module needs a data URL", field=f"{_FIELD}.Source.Params.URL"
            )
        return unpack_module(decode_data_url(url))
    for mount in inputs:
        if module.target and mount.target == module.target:
            return _read_prepared(mount.source)
    raise InvalidJobSpec(
        f"entry module source {module.source.type!r} was not prepared on this node",
        field=f"{_FIELD}.Source.Type",
        hint="use an inline module, or a source type this node's storage supports",
    )


def decode_data_url(url: str) -> bytes:
    """Decode an RFC 2397 ``data:`` URL (base64 or percent-encoded)."""
    if not url[:5].lower() == "data:":
        raise InvalidJobSpec(
            "inline entry module URL must be a data: URL", field=f"{_FIELD}.Source.Params.URL"
        )
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise InvalidJobSpec(
            "malformed data URL: no ',' before the data", field=f"{_FIELD}.Source.Params.URL"
        )
    if "base64" in (part.strip().lower() for part in header.split(";")):
        try:
            return binascii.a2b_base64(payload, strict_mode=True)
        except (binascii.Error, ValueError):
            pass  # maybe only line breaks: strip whitespace and try once more
        try:
            return binascii.a2b_base64("".join(payload.split()), strict_mode=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidJobSpec(
                f"malformed base64 in data URL: {e}", field=f"{_FIELD}.Source.Params.URL"
            ) from e
    return urllib.parse.unquote_to_bytes(payload)


def unpack_module(blob: bytes) -> bytes:
    """The module itself out of a plain, gzip'd, tar'd or gzip'd-tar payload."""
    if blob.startswith(_GZIP_MAGIC):
        blob = _gunzip(blob)
    if blob.startswith(WASM_MAGIC):
        return blob
    if not tarfile.is_tarfile(io.BytesIO(blob)):
        return blob  # not an archive: validation will say it is no WebAssembly either
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as archive:
        files = [m for m in archive.getmembers() if m.isfile()]
        wasm = [m for m in files if m.name.endswith(".wasm")]
        chosen = wasm if wasm else files
        if len(chosen) != 1:
            raise InvalidJobSpec(
                f"the inline archive must hold exactly one .wasm file, found {len(chosen)}",
                field=_FIELD,
            )
        member = chosen[0]
        if member.size > MAX_MODULE_BYTES:
            raise InvalidJobSpec(f"the entry module is larger than {MAX_MODULE_BYTES} bytes")
        extracted = archive.extractfile(member)
        if extracted is None:
            raise InvalidJobSpec(f"cannot read {member.name!r} from the inline archive")
        return extracted.read()


def _gunzip(blob: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(blob, MAX_MODULE_BYTES)
    except zlib.error as e:
        raise InvalidJobSpec(f"the inline entry module is not valid gzip: {e}", field=_FIELD) from e
    if inflater.unconsumed_tail:
        raise InvalidJobSpec(
            f"the inline entry module expands beyond {MAX_MODULE_BYTES} bytes", field=_FIELD
        )
    return out


def _read_prepared(source: Path) -> bytes:
    try:
        return _read_module_file(source)
    except OSError as e:
        raise ExecutionFailed(f"cannot read the prepared entry module: {e}") from e


def _read_module_file(source: Path) -> bytes:
    if source.is_dir():
        candidates = sorted(p for p in source.rglob("*.wasm") if p.is_file())
        if len(candidates) != 1:
            raise InvalidJobSpec(
                f"the prepared entry module holds {len(candidates)} .wasm files, expected one",
                field=_FIELD,
            )
        source = candidates[0]
    if source.stat().st_size > MAX_MODULE_BYTES:
        raise InvalidJobSpec(f"the entry module is larger than {MAX_MODULE_BYTES} bytes")
    return source.read_bytes()
