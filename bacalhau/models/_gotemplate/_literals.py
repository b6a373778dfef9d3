"""Go literals as ``text/template`` reads them: ``strconv`` rules, not Python's.

Numbers follow ``strconv.ParseUint``/``ParseInt`` with base 0 (``0x``, ``0o``, ``0b``, a
leading ``0`` for octal, ``_`` between digits) and ``ParseFloat`` (decimal and hexadecimal
``0x1.8p3`` forms), and a number constant carries every reading that succeeds, as Go's
``parse.NumberNode`` does. Strings follow ``strconv.Unquote`` and characters
``strconv.UnquoteChar``, byte escapes included (``"\\xff"`` is one byte, not a character).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bacalhau.models._gotemplate._values import from_go_bytes, go_bytes

__all__ = ["LiteralError", "Number", "parse_number", "unquote", "unquote_char"]

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1
_DECIMAL_FLOAT = re.compile(r"(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX_FLOAT = re.compile(r"0[xX]([0-9a-fA-F_]*)(\.([0-9a-fA-F_]*))?[pP]([+-]?[0-9_]+)")


class LiteralError(ValueError):
    """A literal Go would refuse; the message is Go's (``invalid syntax``, ...)."""


@dataclass(slots=True)
class Number:
    """Every reading of a number constant that Go accepts (``parse.NumberNode``)."""

    text: str
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    is_complex: bool = False
    int64: int = 0
    uint64: int = 0
    float64: float = 0.0
    complex128: complex = 0j


def _underscore_ok(s: str) -> bool:
    # Go's strconv.underscoreOK: '_' only between digits (a base prefix counts as a digit).
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def parse_uint(s: str) -> int | None:
    """``strconv.ParseUint(s, 0, 64)``, or None where Go returns an error."""
    if not s:
        return None
    base, digits, base0 = 10, s, True
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "xX":
            base, digits = 16, s[2:]
        elif len(s) >= 3 and s[1] in "bB":
            base, digits = 2, s[2:]
        elif len(s) >= 3 and s[1] in "oO":
            base, digits = 8, s[2:]
        else:
            base, digits = 8, s[1:]
    underscores, value = False, 0
    for c in digits:
        if c == "_" and base0:
            underscores = True
            continue
        d = int(c, 16) if c in "0123456789abcdefABCDEF" else 99
        if d >= base:
            return None
        value = value * base + d
        if value > _UINT64_MAX:
            return None
    if underscores and not _underscore_ok(s):
        return None
    return value


def parse_int(s: str) -> int | None:
    """``strconv.ParseInt(s, 0, 64)``, or None where Go returns an error."""
    sign, body = 1, s
    if s[:1] in ("+", "-"):
        sign, body = (-1 if s[0] == "-" else 1), s[1:]
    u = parse_uint(body)
    if u is None:
        return None
    value = sign * u
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def parse_float(s: str) -> float | None:
    """``strconv.ParseFloat(s, 64)`` for the forms the lexer lets through; None on error,
    out of range included (Go answers ±Inf with an error there)."""
    sign, body = 1.0, s
    if s[:1] in ("+", "-"):
        sign, body = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if "_" in body and not _underscore_ok(body):
        return None
    plain = body.replace("_", "")
    hexa = _HEX_FLOAT.fullmatch(body)
    if hexa:
        mantissa = (hexa.group(1) + (hexa.group(3) or "")).replace("_", "")
        if not mantissa:
            return None
        # float.fromhex rounds exactly, as Go does; the exponent is decimal in both.
        try:
            value = float.fromhex(plain)
        except (OverflowError, ValueError):
            return None
    else:
        if not _DECIMAL_FLOAT.fullmatch(body):
            return None
        try:
            value = float(plain)
        except ValueError:
            return None
    if math.isinf(value):
        return None
    return math.copysign(value, sign) if value == 0 else sign * value


def _parse_complex(text: str) -> complex:
    # fmt.Sscan of a "1+2i" constant: a real part, a signed imaginary part, then 'i'.
    cut = max(i for i in range(1, len(text)) if text[i] in "+-" and text[i - 1] not in "eEpP")
    real_text, imag_text = text[:cut], text[cut:-1]
    real, imag = parse_float(real_text), parse_float(imag_text)
    for part, value in ((real_text, real), (imag_text, imag)):
        if value is None:
            raise LiteralError(f'strconv.ParseFloat: parsing "{part}": invalid syntax')
    assert real is not None and imag is not None
    return complex(real, imag)


def parse_number(text: str, *, char: bool = False, complex_: bool = False) -> Number:
    """A number constant as ``parse.newNumber`` reads it; :class:`LiteralError` otherwise."""
    n = Number(text)
    if char:
        rune, tail = unquote_char(text[1:], "'")
        if tail != "'":
            raise LiteralError(f"malformed character constant: {text}")
        n.int64 = n.uint64 = rune
        n.float64 = float(rune)
        n.is_int = n.is_uint = n.is_float = True
        return n
    if complex_:
        n.complex128 = _parse_complex(text)
        n.is_complex = True
        _simplify_complex(n)
        return n
    if text.endswith("i"):
        imag = parse_float(text[:-1])
        if imag is not None:
            n.complex128 = complex(0.0, imag)
            n.is_complex = True
            _simplify_complex(n)
            return n
    u = parse_uint(text)  # fails for "-0", put right below as Go does
    if u is not None:
        n.is_uint, n.uint64 = True, u
    i = parse_int(text)
    if i is not None:
        n.is_int, n.int64 = True, i
        if i == 0:
            n.is_uint, n.uint64 = True, u or 0
    if n.is_int:
        n.is_float, n.float64 = True, float(n.int64)
    elif n.is_uint:
        n.is_float, n.float64 = True, float(n.uint64)
    else:
        f = parse_float(text)
        if f is not None:
            if not any(c in text for c in ".eEpP"):
                raise LiteralError(f"integer overflow: {_quote_ascii(text)}")
            n.is_float, n.float64 = True, f
            if f.is_integer() and _INT64_MIN <= f <= _INT64_MAX:
                n.is_int, n.int64 = True, int(f)
            if f.is_integer() and 0 <= f <= _UINT64_MAX:
                n.is_uint, n.uint64 = True, int(f)
    if not (n.is_int or n.is_uint or n.is_float):
        raise LiteralError(f"illegal number syntax: {_quote_ascii(text)}")
    return n


def _simplify_complex(n: Number) -> None:
    n.is_float = n.complex128.imag == 0
    if n.is_float:
        f = n.complex128.real
        n.float64 = f
        n.is_int = f.is_integer() and _INT64_MIN <= f <= _INT64_MAX
        if n.is_int:
            n.int64 = int(f)
        n.is_uint = f.is_integer() and 0 <= f <= _UINT64_MAX
        if n.is_uint:
            n.uint64 = int(f)


def _quote_ascii(s: str) -> str:
    # Number texts are ASCII (the lexer took them): %q needs no escapes beyond these.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def unquote_char(s: str, quote: str) -> tuple[int, str]:
    """``strconv.UnquoteChar``: the first character of ``s`` (an escape or not) and the
    rest. A ``\\x``/octal escape is a byte value (< 256); the caller knows which."""
    rune, _, tail = _unquote_char(s, quote)
    if 0xDC80 <= rune <= 0xDCFF:
        rune = 0xFFFD  # a byte that is not UTF-8 decodes as utf8.RuneError
    return rune, tail


def _unquote_char(s: str, quote: str) -> tuple[int, bool, str]:
    # Returns (value, is_byte, tail): is_byte for \x and octal escapes, which Go writes
    # into a string as one byte rather than as a UTF-8 encoded character.
    if not s:
        raise LiteralError("invalid syntax")
    c = s[0]
    if c == quote and quote in "'\"":
        raise LiteralError("invalid syntax")
    if c != "\\":
        return ord(c), 0xDC80 <= ord(c) <= 0xDCFF, s[1:]
    if len(s) <= 1:
        raise LiteralError("invalid syntax")
    c, s = s[1], s[2:]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], False, s
    if c in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[c]
        digits = s[:width]
        if len(digits) < width or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise LiteralError("invalid syntax")
        value = int(digits, 16)
        if c == "x":
            return value, True, s[width:]
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise LiteralError("invalid syntax")
        return value, False, s[width:]
    if c in "01234567":
        digits = c + s[:2]
        if len(digits) < 3 or any(d not in "01234567" for d in digits):
            raise LiteralError("invalid syntax")
        value = int(digits, 8)
        if value > 255:
            raise LiteralError("invalid syntax")
        return value, True, s[2:]
    if c in "'\"":
        if c != quote:
            raise LiteralError("invalid syntax")
        return ord(c), False, s
    raise LiteralError("invalid syntax")


def unquote(quoted: str) -> str:
    """``strconv.Unquote`` of a ``"..."`` or raw `` `...` `` string token."""
    if len(quoted) < 2 or quoted[0] != quoted[-1] or quoted[0] not in '"`':
        raise LiteralError("invalid syntax")
    body = quoted[1:-1]
    if quoted[0] == "`":
        if "`" in body:
            raise LiteralError("invalid syntax")
        # The Go spec drops carriage returns from raw strings; Unquote does the same.
        return body.replace("\r", "")
    if "\n" in body:
        raise LiteralError("invalid syntax")
    out = bytearray()
    while body:
        value, is_byte, body = _unquote_char(body, '"')
        if is_byte:
            out.append(value - 0xDC00 if value >= 0xDC80 else value)
        else:
            out += go_bytes(chr(value))
    return from_go_bytes(bytes(out))
