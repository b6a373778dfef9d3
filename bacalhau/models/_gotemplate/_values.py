"""The Go values a job file template can hold, modelled in Python.

Bacalhau executes job files with a ``map[string]string`` as data and no extra functions,
so a template only ever meets these Go types, each with one Python spelling:

========================  ==========================================================
Go                        Python
========================  ==========================================================
``string``                ``str`` (a Go string is bytes: see :func:`go_bytes`)
``int``                   ``int`` (literals, ``len``; never ``bool``)
``uint8``                 :class:`Byte` (what ``index`` takes out of a string)
``float64``               ``float``
``complex128``            ``complex``
``bool``                  ``bool``
``map[string]string``     any ``Mapping[str, str]`` (the data, ``.`` and ``$``)
no value / ``nil``        :data:`NO_VALUE` (Go's invalid ``reflect.Value``)
========================  ==========================================================

Go strings are byte strings that may hold invalid UTF-8 (``"\\xff"``, ``slice`` cutting a
character in two). They are kept as ``str`` in which every byte that is not part of valid
UTF-8 is the lone surrogate U+DC80..U+DCFF, Python's ``surrogateescape`` spelling, so
``len``, ``index`` and ``slice`` work on the same bytes Go does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeAlias

__all__ = [
    "NO_VALUE",
    "Byte",
    "GoValue",
    "NoValue",
    "basic_kind",
    "from_go_bytes",
    "go_bytes",
    "go_string",
    "is_true",
    "type_name",
]


class NoValue:
    """Go's invalid ``reflect.Value``: a missing result, ``nil`` passed on, an empty ``and``."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = NoValue()


class Byte(int):
    """A Go ``uint8``: ``index "abc" 0`` is ``Byte(97)``, printed as 97, kind uint."""

    __slots__ = ()


GoValue: TypeAlias = str | int | float | complex | bool | Mapping[str, str] | NoValue


def go_bytes(s: str) -> bytes:
    """The Go bytes of a string value (see the module docstring)."""
    return s.encode("utf-8", "surrogateescape")


def from_go_bytes(b: bytes) -> str:
    """A string value from Go bytes: valid UTF-8 as text, every other byte escaped."""
    return b.decode("utf-8", "surrogateescape")


def go_string(s: str) -> str:
    """``s`` in the canonical spelling of :func:`go_bytes`.

    Text from outside may hold surrogates that no Go string can (a lone ``\\ud800``, or
    escaped bytes that together are valid UTF-8); they become what Go would read.
    """
    try:
        return from_go_bytes(go_bytes(s))
    except UnicodeEncodeError:
        # Surrogates outside U+DC80..U+DCFF name no byte: Go reads them as U+FFFD.
        fixed = "".join(
            "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF and not 0xDC80 <= ord(c) <= 0xDCFF else c
            for c in s
        )
        return from_go_bytes(go_bytes(fixed))


def type_name(v: GoValue) -> str:
    """Go's name for the value's type (``%T``, error messages)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Byte):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]string"
    return "<nil>"


def basic_kind(v: GoValue) -> str | None:
    """The comparison kind of ``text/template``'s ``eq``/``lt``: None for maps and no value."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Byte):
        return "uint"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return None


def is_true(v: GoValue) -> bool:
    """Go's truth: the zero value of its type, an empty string or map, and no value are false."""
    if isinstance(v, NoValue):
        return False
    if isinstance(v, (str, Mapping)):
        return len(v) > 0
    return bool(v)
