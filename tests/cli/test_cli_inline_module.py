"""`bacalhau wasm run` sends a local module inline; the same module must give the same
data: URL every time, since requesters and compute nodes keep inline modules by its hash."""

from __future__ import annotations

from pathlib import Path

from bacalhau.cli._wasm import inline_module
from bacalhau.executor.wasm._source import unpack_module
from bacalhau.models import decode_data_url


def test_the_same_module_gives_the_same_url_whenever_it_is_sent(tmp_path: Path) -> None:
    module = b"\0asm\1\0\0\0" + bytes(range(256)) * 8  # past the plain-URL limit: a tar.gz
    path = tmp_path / "main.wasm"
    path.write_bytes(module)

    url = inline_module(path)["Source"]["Params"]["URL"]
    assert url.startswith("data:application/gzip;base64,")
    payload = decode_data_url(url, field="URL")
    # gzip's header holds a modification time (bytes 4-8): left at 0, not the time of sending.
    assert payload[4:8] == b"\0\0\0\0"
    assert unpack_module(payload) == module
    assert inline_module(path)["Source"]["Params"]["URL"] == url
