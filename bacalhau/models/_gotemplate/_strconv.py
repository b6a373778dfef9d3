"""Go's ``strconv`` rules the printer needs: quoting strings and characters, and
formatting floats.

``quote`` is ``strconv.Quote`` over a Go string (bytes that are not UTF-8 print as ``\\xff``,
see ``_values``); ``format_float`` is ``strconv.FormatFloat`` for finite float64 values,
Go's shortest representation included (``1e+06``, ``0.0001``), with Python's correctly
rounded conversions underneath.
"""

from __future__ import annotations

import math
import struct

__all__ = ["can_backquote", "escaped_byte", "format_float", "is_print", "quote", "quote_rune"]


def is_print(c: str) -> bool:
    """``strconv.IsPrint`` of one character."""
    # strconv.IsPrint: categories L, M, N, P, S and the ASCII space; Python's isprintable
    # draws the same line (C* and Z* other than ' ' are not printable).
    return c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF


def escaped_byte(c: str) -> int | None:
    """The byte a surrogate-escaped character stands for, None for a real character."""
    # A byte that is not valid UTF-8, spelt as a surrogate (see _values): its value.
    o = ord(c)
    return o - 0xDC00 if 0xDC80 <= o <= 0xDCFF else None


def _escape_rune(r: int, quote_char: str, ascii_only: bool) -> str:
    # strconv.appendEscapedRune
    c = chr(r)
    if c == quote_char or c == "\\":
        return "\\" + c
    if ascii_only:
        if r < 0x80 and is_print(c):
            return c
    elif is_print(c):
        return c
    simple = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if r in simple:
        return simple[r]
    if r < 0x20 or r == 0x7F:
        return f"\\x{r:02x}"
    if r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    return f"\\u{r:04x}" if r < 0x10000 else f"\\U{r:08x}"


def quote(s: str, *, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``) of a Go string."""
    out = ['"']
    for c in s:
        b = escaped_byte(c)
        out.append(f"\\x{b:02x}" if b is not None else _escape_rune(ord(c), '"', ascii_only))
    out.append('"')
    return "".join(out)


def quote_rune(r: int, *, ascii_only: bool = False) -> str:
    """``strconv.QuoteRune`` (``QuoteRuneToASCII`` with ``ascii_only``)."""
    if r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    return "'" + _escape_rune(r, "'", ascii_only) + "'"


def can_backquote(s: str) -> bool:
    """``strconv.CanBackquote``: printable in a raw string, on one line."""
    for c in s:
        if escaped_byte(c) is not None or c == "\ufeff" or c in "`\x7f":
            return False
        if c < " " and c != "\t":
            return False
    return True


# -- strconv.FormatFloat -------------------------------------------------------------------


def _digits(v: float, fmt: str, prec: int) -> tuple[str, int]:
    """Decimal digits of |v| and the decimal point position (0.DIGITS x 10^dp), trailing
    zeros dropped, rounded as FormatFloat rounds for ``fmt``/``prec`` (-1: shortest)."""
    v = abs(v)
    if v == 0:
        return "", 0
    if prec < 0:
        text = repr(v)  # shortest digits that read back as v: what Go's shortest gives
    elif fmt == "f":
        text = format(v, f".{prec}f")
    else:
        text = format(v, f".{(prec if fmt == 'e' else max(prec, 1) - 1)}e")
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    dp = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0"), dp


def _fmt_e(digs: str, dp: int, prec: int, e: str) -> str:
    out = digs[0] if digs else "0"
    if prec > 0:
        out += "." + digs[1 : prec + 1].ljust(prec, "0")
    exp = 0 if not digs else dp - 1
    sign = "-" if exp < 0 else "+"
    return f"{out}{e}{sign}{abs(exp):02d}"


def _fmt_f(digs: str, dp: int, prec: int) -> str:
    out = digs[:dp].ljust(dp, "0") if dp > 0 else "0"
    if prec > 0:
        frac = "".join(digs[j] if 0 <= j < len(digs) else "0" for j in range(dp, dp + prec))
        out += "." + frac
    return out


def _fmt_x(v: float, prec: int, fmt: str) -> str:
    # strconv's %x: -0x1.yyyyp±dd, the mantissa normalised so its leading digit is 1.
    bits = struct.unpack(">Q", struct.pack(">d", v))[0]
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp += 1
    else:
        mant |= 1 << 52
    exp -= 1023
    if mant == 0:
        exp = 0
    mant <<= 60 - 52
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hexd = "0123456789abcdef" if fmt == "x" else "0123456789ABCDEF"
    out = "0" + fmt + str((mant >> 60) & 1)
    mant = (mant << 4) & ((1 << 64) - 1)
    if prec < 0 and mant != 0:
        out += "."
        while mant != 0:
            out += hexd[(mant >> 60) & 15]
            mant = (mant << 4) & ((1 << 64) - 1)
    elif prec > 0:
        out += "."
        for _ in range(prec):
            out += hexd[(mant >> 60) & 15]
            mant = (mant << 4) & ((1 << 64) - 1)
    p = "p" if fmt == "x" else "P"
    return f"{out}{p}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_float(v: float, fmt: str, prec: int) -> str:
    """``strconv.FormatFloat(v, fmt, prec, 64)`` for finite ``v`` (fmt in ``bxXeEfgG``)."""
    neg = math.copysign(1.0, v) < 0
    sign = "-" if neg else ""
    if fmt == "b":
        bits = struct.unpack(">Q", struct.pack(">d", v))[0]
        exp = (bits >> 52) & 0x7FF
        mant = bits & ((1 << 52) - 1)
        exp = exp + 1 if exp == 0 else exp
        if (bits >> 52) & 0x7FF:
            mant |= 1 << 52
        exp -= 1023 + 52
        return f"{sign}{mant}p{'+' if exp >= 0 else ''}{exp}"
    if fmt in "xX":
        return sign + _fmt_x(abs(v), prec, fmt)
    shortest = prec < 0
    lower = fmt.lower()
    digs, dp = _digits(v, lower, prec)
    if shortest:
        prec = {"e": max(len(digs) - 1, 0), "f": max(len(digs) - dp, 0)}.get(lower, len(digs))
    if lower == "e":
        return sign + _fmt_e(digs, dp, prec, fmt)
    if lower == "f":
        return sign + _fmt_f(digs, dp, prec)
    # %g: %e for large and small exponents, else %f; no trailing zeros either way.
    if not shortest and prec == 0:
        prec = 1
    eprec = 6 if shortest else prec
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        prec = min(prec, len(digs))
        return sign + _fmt_e(digs, dp, prec - 1, "e" if fmt == "g" else "E")
    if prec > dp:
        prec = len(digs)
    return sign + _fmt_f(digs, dp, max(prec - dp, 0))
