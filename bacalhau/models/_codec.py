"""Case-insensitive JSON decoding with field paths.

Bacalhau's Go server decodes keys case-insensitively; the Python clients emit exact spellings.
We accept any casing and, on a type mismatch, raise :class:`InvalidJobSpec` naming the dotted
path of the offending field so the user knows exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bacalhau.errors import InvalidJobSpec


class Obj:
    """A read-only, case-insensitive view of one JSON object at a known path."""

    __slots__ = ("_data", "path")

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        # A plain dict by its exact type first: every decoded object passes here, and
        # isinstance against the Mapping ABC costs several times more.
        elif type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidJobSpec(
                f"{path or 'document'} must be an object, got {type_name(data)}", field=path
            )
        self._data = {str(k).lower(): v for k, v in data.items()}
        self.path = path

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        return self._data.get(key.lower())

    def has(self, key: str) -> bool:
        return self._data.get(key.lower()) is not None

    def get_str(self, key: str, default: str = "") -> str:
        v = self._data.get(key.lower())
        if type(v) is str:
            return v
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise InvalidJobSpec(f"{self.sub(key)} must be a string", field=self.sub(key))
        return v if isinstance(v, str) else str(v)

    def get_int(self, key: str, default: int = 0) -> int:
        v = self._data.get(key.lower())
        if type(v) is int:
            return v
        if v is None:
            return default
        if isinstance(v, bool):
            raise InvalidJobSpec(f"{self.sub(key)} must be an integer", field=self.sub(key))
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                pass
        raise InvalidJobSpec(f"{self.sub(key)} must be an integer, got {v!r}", field=self.sub(key))

    def get_float(self, key: str, default: float = 0.0) -> float:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidJobSpec(f"{self.sub(key)} must be a number", field=self.sub(key))
        return float(v)

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "1", "t", "yes"):
            return True
        if isinstance(v, str) and v.lower() in ("false", "0", "f", "no", ""):
            return False
        raise InvalidJobSpec(f"{self.sub(key)} must be a boolean", field=self.sub(key))

    def get_obj(self, key: str) -> Obj:
        return Obj(self.raw(key), self.sub(key))

    def get_list(self, key: str) -> list[Any]:
        v = self.raw(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise InvalidJobSpec(f"{self.sub(key)} must be a list", field=self.sub(key))
        return v

    def str_list(self, key: str) -> list[str]:
        out: list[str] = []
        for i, item in enumerate(self.get_list(key)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                path = f"{self.sub(key)}[{i}]"
                raise InvalidJobSpec(f"{path} must be a string", field=path)
            out.append(item if isinstance(item, str) else str(item))
        return out

    def str_map(self, key: str) -> dict[str, str]:
        v = self.raw(key)
        if v is None:
            return {}
        if isinstance(v, list) and not v:
            return {}
        if not isinstance(v, Mapping):
            raise InvalidJobSpec(f"{self.sub(key)} must be a map", field=self.sub(key))
        out: dict[str, str] = {}
        for k, item in v.items():
            if item is None:
                item = ""
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, (str, int, float)):
                path = f"{self.sub(key)}.{k}"
                raise InvalidJobSpec(f"{path} must be a string", field=path)
            out[str(k)] = item if isinstance(item, str) else str(item)
        return out

    def any_map(self, key: str) -> dict[str, Any]:
        """A map whose keys keep their original spelling (engine params, etc.)."""
        v = self.raw(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise InvalidJobSpec(f"{self.sub(key)} must be a map", field=self.sub(key))
        return {str(k): item for k, item in v.items()}


def type_name(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    return type(v).__name__


def param(params: Mapping[str, Any], key: str) -> Any:
    """Look a param up case-insensitively (Bacalhau decodes params that way)."""
    if key in params:
        return params[key]
    low = key.lower()
    for k, v in params.items():
        if k.lower() == low:
            return v
    return None
