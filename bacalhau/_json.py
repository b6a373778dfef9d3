"""JSON text for what the nodes store: orjson, with the standard library behind it.

A job's life writes about twenty small JSON documents on the requester (history items,
execution rows, the job's row) and a few on its compute node; orjson encodes each several
times quicker than the standard library. It refuses (TypeError) what it would encode
differently, and that takes the standard library's way: dataclasses and datetimes (passed
through, refused by both), integers beyond 64 bits, non-string keys, lone surrogates. What it
writes reads back the same with :func:`json.loads`; only a float's spelling may differ
(``1e16`` for ``1e+16``; ``null`` for a NaN, which the standard library writes as the
invalid ``NaN``), and non-ASCII text is kept as it is rather than escaped.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["ORJSON_STRICT", "dumps_text"]

#: The orjson options under which it refuses what the standard library would not write alike.
ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps_text(value: Any) -> str:
    """``value`` as compact JSON text, as :func:`json.loads` reads it back."""
    try:
        return orjson.dumps(value, option=ORJSON_STRICT).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))
