"""Where a node keeps data: the CID-addressed store (:mod:`bacalhau.storage.cid`).

Input source plugins (ipfs, urlDownload, s3, localDirectory, inline) will live next to it.
This package imports nothing of ours but :mod:`bacalhau.models` and :mod:`bacalhau.errors`.
"""

from __future__ import annotations

__all__: list[str] = []
