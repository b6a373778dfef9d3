"""Go's ``fmt`` printing for the values a template holds: ``print``, ``printf``, ``println``
and the ``%v`` an action prints with.

The printer follows ``fmt/print.go`` and ``fmt/format.go``: verbs ``%v %T %t %d %b %o %O
%x %X %c %q %U %e %E %f %F %g %G %s %%`` with flags ``+ - # 0 space``, width, precision,
``*`` and ``[n]`` argument indexes, and Go's in-band errors (``%!d(string=x)``,
``%!s(MISSING)``, ``%!(EXTRA int=1)``, ``%!(BADWIDTH)``, ``%!(NOVERB)``, ``%!(BADINDEX)``).
Floats print with Go's shortest representation (``1e+06``, ``0.0001``), not Python's.
``%p`` of the data map would print a memory address in Go; here it is a bad verb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bacalhau.models._gotemplate._strconv import (
    can_backquote,
    format_float,
    is_print,
    quote,
    quote_rune,
)
from bacalhau.models._gotemplate._values import (
    Byte,
    GoValue,
    NoValue,
    go_bytes,
    type_name,
)

__all__ = ["sprint", "sprintf", "sprintln"]

_LDIGITS, _UDIGITS = "0123456789abcdefx", "0123456789ABCDEFX"
_TOO_LARGE = 1_000_000  # fmt's limit on a width or precision


# -- the printer ---------------------------------------------------------------------------


class _Printer:
    """One Sprint/Sprintf call: fmt's ``pp`` and ``fmt`` state together."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.clear_flags()
        self.erroring = False

    def clear_flags(self) -> None:
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False

    # -- padding ----------------------------------------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero and not self.minus else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)  # runes: one Python character each (see _values)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    # -- values -------------------------------------------------------------------------------

    def print_arg(self, arg: GoValue, verb: str) -> None:
        if isinstance(arg, NoValue):
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, arg)
            return
        if verb == "T":
            self.fmt_s(type_name(arg))
            return
        if isinstance(arg, bool):
            if verb in "tv":
                self.pad("true" if arg else "false")
            else:
                self.bad_verb(verb, arg)
        elif isinstance(arg, int):
            self.fmt_integer(arg, not isinstance(arg, Byte), verb, arg)
        elif isinstance(arg, float):
            self.fmt_float(arg, verb, arg)
        elif isinstance(arg, complex):
            self.fmt_complex(arg, verb)
        elif isinstance(arg, str):
            self.fmt_string(arg, verb)
        else:
            self.print_map(arg, verb)

    def bad_verb(self, verb: str, arg: GoValue) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if isinstance(arg, NoValue):
            self.buf.append("<nil>")
        else:
            self.buf.append(type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")
        self.erroring = False

    def print_map(self, m: Mapping[str, str], verb: str) -> None:
        if verb == "p":
            self.bad_verb(verb, m)  # Go prints the map's address: nothing to reproduce
            return
        self.buf.append("map[string]string{" if self.sharp_v else "map[")
        for i, key in enumerate(sorted(m, key=go_bytes)):  # fmt sorts keys, bytewise
            if i:
                self.buf.append(", " if self.sharp_v else " ")
            self.fmt_string(key, verb)
            self.buf.append(":")
            self.fmt_string(m[key], verb)
        self.buf.append("}" if self.sharp_v else "]")

    def fmt_integer(self, v: int, signed: bool, verb: str, arg: GoValue) -> None:
        u = v & 0xFFFFFFFFFFFFFFFF
        if verb == "v":
            if self.sharp_v and not signed:
                sharp, self.sharp = self.sharp, True
                self.integer(u, 16, False, "v", _LDIGITS)
                self.sharp = sharp
            else:
                self.integer(u, 10, signed, verb, _LDIGITS)
        elif verb in "dboOxX":
            base = {"d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
            self.integer(u, base, signed, verb, _UDIGITS if verb == "X" else _LDIGITS)
        elif verb == "c":
            self.pad(chr(_rune(u)))
        elif verb == "q":
            self.pad(quote_rune(_rune(u), ascii_only=self.plus))
        elif verb == "U":
            self.unicode(u)
        else:
            self.bad_verb(verb, arg)

    def integer(self, u: int, base: int, signed: bool, verb: str, digits: str) -> None:
        negative = signed and u >= 1 << 63
        if negative:
            u = (1 << 64) - u
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:  # precision 0 and value 0 print nothing but padding
                zero, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = zero
                return
        elif self.zero and not self.minus and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1  # leave room for the sign
        text = ""
        while True:
            text = digits[u % base] + text
            u //= base
            if u == 0:
                break
        text = text.rjust(prec, "0")
        if self.sharp:
            if base == 2:
                text = "0b" + text
            elif base == 8 and text[0] != "0":
                text = "0" + text
            elif base == 16:
                text = "0" + digits[16] + text
        if verb == "O":
            text = "0o" + text
        if negative:
            text = "-" + text
        elif self.plus:
            text = "+" + text
        elif self.space:
            text = " " + text
        zero, self.zero = self.zero, False  # zero padding was done as precision
        self.pad(text)
        self.zero = zero

    def unicode(self, u: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        text = "U+" + format(u, "X").rjust(prec, "0")
        if self.sharp and u <= 0x10FFFF and is_print(chr(u)):
            text += " '" + chr(u) + "'"
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_float(self, v: float, verb: str, arg: GoValue) -> None:
        if verb in ("v", "b", "g", "G", "x", "X"):
            self.float(v, "g" if verb == "v" else verb, -1)
        elif verb in "feE":
            self.float(v, verb, 6)
        elif verb == "F":
            self.float(v, "f", 6)
        else:
            self.bad_verb(verb, arg)

    def fmt_complex(self, v: complex, verb: str) -> None:
        if verb not in ("v", "b", "g", "G", "x", "X", "f", "F", "e", "E"):
            self.bad_verb(verb, v)
            return
        plus = self.plus
        self.buf.append("(")
        self.fmt_float(v.real, verb, v)
        self.plus = True  # the imaginary part always has a sign
        self.fmt_float(v.imag, verb, v)
        self.buf.append("i)")
        self.plus = plus

    def float(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec)
        num = num if num[0] in "+-" else "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if self.sharp and verb != "b":
            num = _sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and not self.minus and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    def fmt_string(self, s: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(s)
            else:
                self.fmt_s(s)
        elif verb == "s":
            self.fmt_s(s)
        elif verb in "xX":
            self.fmt_sx(s, _LDIGITS if verb == "x" else _UDIGITS)
        elif verb == "q":
            self.fmt_q(s)
        else:
            self.bad_verb(verb, s)

    def truncate(self, s: str) -> str:
        return s[: self.prec] if self.prec_present else s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
        else:
            self.pad(quote(s, ascii_only=self.plus))

    def fmt_sx(self, s: str, digits: str) -> None:
        data = go_bytes(s)
        if self.prec_present and self.prec < len(data):
            data = data[: self.prec]
        if not data:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        sep = " " if self.space else ""
        prefix = "0" + digits[16] if self.sharp else ""
        parts = [digits[b >> 4] + digits[b & 15] for b in data]
        # "% x" puts a space (and with '#' a 0x) before every byte, "%#x" one 0x in front.
        text = sep.join(prefix + p for p in parts) if self.space else prefix + "".join(parts)
        if self.wid_present and self.wid > len(text) and not self.minus:
            self.write_padding(self.wid - len(text))
        self.buf.append(text)
        if self.wid_present and self.wid > len(text) and self.minus:
            self.write_padding(self.wid - len(text))


def _rune(u: int) -> int:
    # fmtC/fmtQc: anything beyond Unicode, or a surrogate, prints as U+FFFD.
    return 0xFFFD if u > 0x10FFFF or 0xD800 <= u <= 0xDFFF else u


def _sharp_float(num: str, verb: str, prec: int) -> str:
    # fmt's '#' for floats: always a decimal point; %g keeps its trailing zeros.
    digits = 0
    if verb in ("v", "g", "G", "x"):
        digits = 6 if prec == -1 else prec
    tail = ""
    body = num
    for i in range(1, len(num)):
        ch = num[i]
        if ch in "pP" or (ch in "eE" and verb not in "xX"):
            body, tail = num[:i], num[i:]
            break
    has_point = "." in body
    seen_nonzero = False
    for ch in body[1:]:
        if ch == ".":
            continue
        if ch != "0":
            seen_nonzero = True
        if seen_nonzero:
            digits -= 1
    if not has_point:
        if len(body) == 2 and body[1] == "0":
            digits -= 1  # a lone leading 0 counts once
        body += "."
    return body + "0" * max(digits, 0) + tail


def sprint(args: Sequence[GoValue]) -> str:
    """``fmt.Sprint``: operands with ``%v``, a space between two that are not strings."""
    p = _Printer()
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.clear_flags()
        p.print_arg(arg, "v")
        prev_string = is_string
    return "".join(p.buf)


def sprintln(args: Sequence[GoValue]) -> str:
    """``fmt.Sprintln``: operands with ``%v``, spaces between all, a newline at the end."""
    p = _Printer()
    for i, arg in enumerate(args):
        if i > 0:
            p.buf.append(" ")
        p.clear_flags()
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)


def _parse_num(s: str, i: int, end: int) -> tuple[int, bool, int]:
    # fmt's parsenum: digits from i; an absurdly long number is no number.
    num, isnum = 0, False
    while i < end and "0" <= s[i] <= "9":
        if num > _TOO_LARGE:
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def _int_from_arg(args: Sequence[GoValue], n: int) -> tuple[int, bool, int]:
    if n >= len(args):
        return 0, False, n
    a = args[n]
    if isinstance(a, int) and not isinstance(a, bool) and -_TOO_LARGE <= a <= _TOO_LARGE:
        return int(a), True, n + 1
    return 0, False, n + 1


def sprintf(fmt: str, args: Sequence[GoValue]) -> str:
    """``fmt.Sprintf``, with Go's in-band reports of bad verbs and argument counts."""
    p = _Printer()
    end = len(fmt)
    arg_num = 0
    reordered = False
    i = 0
    while i < end:
        good_arg_num = True
        j = fmt.find("%", i)
        if j < 0:
            p.buf.append(fmt[i:])
            break
        p.buf.append(fmt[i:j])
        i = j + 1
        p.clear_flags()
        while i < end and fmt[i] in "#0+- ":
            c = fmt[i]
            if c == "#":
                p.sharp = True
            elif c == "0":
                p.zero = True
            elif c == "+":
                p.plus = True
            elif c == "-":
                p.minus = True
            else:
                p.space = True
            i += 1

        def arg_number(i: int) -> tuple[int, bool]:
            # An explicit [n] argument index: the next argument to use, 1-based in the text.
            nonlocal arg_num, reordered, good_arg_num
            if i >= end or fmt[i] != "[":
                return i, False
            reordered = True
            close = fmt.find("]", i + 1) if end - i >= 3 else -1
            if close < 0:
                good_arg_num = False
                return i + 1, False
            index, ok, newi = _parse_num(fmt, i + 1, close)
            if not ok or newi != close:
                good_arg_num = False
                return close + 1, False
            index -= 1
            if 0 <= index < len(args):
                arg_num = index
                return close + 1, True
            good_arg_num = False
            return close + 1, True

        i, after_index = arg_number(i)
        if i < end and fmt[i] == "*":
            i += 1
            p.wid, p.wid_present, arg_num = _int_from_arg(args, arg_num)
            if not p.wid_present:
                p.buf.append("%!(BADWIDTH)")
            if p.wid < 0:
                p.wid, p.minus, p.zero = -p.wid, True, False
            after_index = False
        else:
            p.wid, p.wid_present, i = _parse_num(fmt, i, end)
            if after_index and p.wid_present:  # "%[3]2d"
                good_arg_num = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:  # "%[3].2d"
                good_arg_num = False
            i, after_index = arg_number(i)
            if i < end and fmt[i] == "*":
                i += 1
                p.prec, p.prec_present, arg_num = _int_from_arg(args, arg_num)
                if p.prec < 0:
                    p.prec, p.prec_present = 0, False
                if not p.prec_present:
                    p.buf.append("%!(BADPREC)")
                after_index = False
            else:
                p.prec, p.prec_present, i = _parse_num(fmt, i, end)
                if not p.prec_present:
                    p.prec, p.prec_present = 0, True
        if not after_index:
            i, after_index = arg_number(i)
        if i >= end:
            p.buf.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            p.buf.append("%")
        elif not good_arg_num:
            p.buf.append(f"%!{verb}(BADINDEX)")
        elif arg_num >= len(args):
            p.buf.append(f"%!{verb}(MISSING)")
        else:
            if verb in "vw":  # %w is a bad verb here (no errors), printed as %v would be
                p.sharp_v, p.sharp = p.sharp, False
                p.plus_v, p.plus = p.plus, False
            p.print_arg(args[arg_num], verb)
            arg_num += 1
    if not reordered and arg_num < len(args):
        p.clear_flags()
        p.buf.append("%!(EXTRA ")
        for k, arg in enumerate(args[arg_num:]):
            if k:
                p.buf.append(", ")
            if isinstance(arg, NoValue):
                p.buf.append("<nil>")
            else:
                p.buf.append(type_name(arg) + "=")
                p.print_arg(arg, "v")
        p.buf.append(")")
    return "".join(p.buf)
