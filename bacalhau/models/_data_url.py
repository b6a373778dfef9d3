"""RFC 2397 ``data:`` URLs, as inline inputs and inline WASM modules carry them.

One decoder for both, read as Bacalhau (Go) reads them: the scheme in any case, ``;base64``
as the header's last parameter, and line breaks in the base64 ignored, so a module pasted
into a YAML block over several lines (Bacalhau's own sample WASM job has one) decodes as it
does there.
"""

from __future__ import annotations

import binascii
import urllib.parse

from bacalhau.errors import InvalidJobSpec

__all__ = ["decode_data_url"]


def decode_data_url(url: str, *, field: str) -> bytes:
    """The payload of a ``data:`` URL (base64 or percent-encoded); :class:`InvalidJobSpec`
    naming ``field`` for anything else."""
    if url[:5].lower() != "data:":
        raise InvalidJobSpec(
            "inline data must be a data: URL",
            field=field,
            hint="write data:[<media type>][;base64],<data>",
        )
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise InvalidJobSpec("the data: URL has no ',' before its payload", field=field)
    if header.rsplit(";", 1)[-1].strip().lower() != "base64":
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        pass  # maybe only line breaks: try once more without whitespace
    try:
        return binascii.a2b_base64("".join(payload.split()), strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidJobSpec(f"the data: URL is not valid base64: {e}", field=field) from e
