"""The ``inline`` source: data carried in the job itself as an RFC 2397 ``data:`` URL.

A plain payload becomes one file at the input's target; a gzip'd tar (what Bacalhau's CLI
sends for anything over 512 bytes or a directory) is unpacked into a directory there. Both
the encoded URL and what it unpacks to are bounded.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import SpecConfig, decode_data_url
from bacalhau.storage._archive import extract_tar_gz
from bacalhau.storage._base import PreparedPath, input_failed, str_param

#: The most an inline input may unpack to on the node.
DEFAULT_INLINE_LIMIT = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_FIELD = "Source.Params.URL"


def _decode_bounded(url: str, *, max_bytes: int) -> bytes:
    """The payload of a ``data:`` URL (base64 or percent-encoded), at most ``max_bytes``."""
    # Base64 grows by 4/3: a URL much larger than the limit cannot decode under it (a
    # quarter more allowed for its header and line breaks).
    if len(url) > (max_bytes * 4 // 3 + 4) * 5 // 4 + 64:
        raise _too_large(max_bytes)
    data = decode_data_url(url, field=_FIELD)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> Exception:
    return input_failed(
        f"inline data is larger than the limit of {max_bytes} bytes",
        hint="use an input source such as s3, urlDownload or ipfs for large data",
        kind="inline",
    )


class InlineSource:
    """Materialises ``data:`` URLs (a file, or a directory for a gzip'd tar)."""

    def __init__(self, *, max_bytes: int = DEFAULT_INLINE_LIMIT) -> None:
        self._max_bytes = max_bytes

    @property
    def name(self) -> str:
        return "inline"

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        url = str_param(spec, "URL", required=True)
        if url[:5].lower() != "data:":
            raise InvalidJobSpec("an inline input needs a data: URL", field=_FIELD)

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        data = _decode_bounded(str_param(spec, "URL", required=True), max_bytes=self._max_bytes)
        if data.startswith(_GZIP_MAGIC):
            folder = dest / "inline"
            folder.mkdir()
            await asyncio.to_thread(
                extract_tar_gz,
                io.BytesIO(data),
                folder,
                max_bytes=self._max_bytes,
                what="the inline archive",
            )
            return PreparedPath(folder)
        target = dest / "inline"
        await asyncio.to_thread(target.write_bytes, data)
        return PreparedPath(target)
