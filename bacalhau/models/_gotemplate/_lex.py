"""The lexer of Go's ``text/template/parse``, with its exact rules.

Text runs up to ``{{``; an action is tokenised until ``}}``. A trim marker is ``-`` with
white space after it (``{{- ``) or before it (`` -}}``), and trims every ASCII space, tab,
carriage return and newline next to the action, as Go's lexer does (``{{-3}}`` is the number
-3). A comment is ``{{/*`` ... ``*/}}`` with nothing between the delimiters and the comment
markers but a trim marker. Newlines may appear inside actions (Go 1.16+).

The scanner works by positions in the input (``str.startswith(x, pos)``, ``str.find``), never
by slicing off the rest, so lexing is linear in the size of the template.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

from bacalhau.models._gotemplate._strconv import quote

__all__ = ["Item", "ItemType", "Lexer"]


class ItemType(enum.IntEnum):
    """Token kinds, in Go's order: keywords sort after ``KEYWORD``."""

    ERROR = enum.auto()
    BOOL = enum.auto()
    CHAR = enum.auto()  # printable ASCII character; grab bag for comma etc.
    CHAR_CONSTANT = enum.auto()
    COMPLEX = enum.auto()
    ASSIGN = enum.auto()  # =
    DECLARE = enum.auto()  # :=
    EOF = enum.auto()
    FIELD = enum.auto()  # .Alphanumeric
    IDENTIFIER = enum.auto()
    LEFT_DELIM = enum.auto()
    LEFT_PAREN = enum.auto()
    NUMBER = enum.auto()
    PIPE = enum.auto()
    RAW_STRING = enum.auto()
    RIGHT_DELIM = enum.auto()
    RIGHT_PAREN = enum.auto()
    SPACE = enum.auto()
    STRING = enum.auto()
    TEXT = enum.auto()
    VARIABLE = enum.auto()  # $ or $name
    KEYWORD = enum.auto()
    BLOCK = enum.auto()
    BREAK = enum.auto()
    CONTINUE = enum.auto()
    DOT = enum.auto()
    DEFINE = enum.auto()
    ELSE = enum.auto()
    END = enum.auto()
    IF = enum.auto()
    NIL = enum.auto()
    RANGE = enum.auto()
    TEMPLATE = enum.auto()
    WITH = enum.auto()


_KEYWORDS = {
    ".": ItemType.DOT,
    "block": ItemType.BLOCK,
    "break": ItemType.BREAK,
    "continue": ItemType.CONTINUE,
    "define": ItemType.DEFINE,
    "else": ItemType.ELSE,
    "end": ItemType.END,
    "if": ItemType.IF,
    "range": ItemType.RANGE,
    "nil": ItemType.NIL,
    "template": ItemType.TEMPLATE,
    "with": ItemType.WITH,
}

_SPACE = " \t\r\n"
_LEFT, _RIGHT, _LEFT_COMMENT, _RIGHT_COMMENT = "{{", "}}", "/*", "*/"


class Item(NamedTuple):
    """A token: its kind, where it starts, its text and the line it starts on."""

    typ: ItemType
    pos: int
    val: str
    line: int

    def describe(self) -> str:
        """The token as Go's parse errors show it: ``"x"``, ``<if>``, ``EOF``."""
        if self.typ == ItemType.EOF:
            return "EOF"
        if self.typ == ItemType.ERROR:
            return self.val
        if self.typ > ItemType.KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def _is_alphanumeric(c: str) -> bool:
    # Go's unicode.IsLetter / IsDigit (categories L* and Nd), and '_'.
    if c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9"):
        return True
    return c > "\x7f" and unicodedata.category(c) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")


def _has_left_trim(text: str, pos: int) -> bool:
    return text.startswith("-", pos) and pos + 1 < len(text) and text[pos + 1] in _SPACE


def _has_right_trim(text: str, pos: int) -> bool:
    return pos + 1 < len(text) and text[pos] in _SPACE and text[pos + 1] == "-"


_State = Callable[["Lexer"], "_State | None"]


class Lexer:
    """Go's ``text/template`` lexer: :meth:`next_item` returns one token at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0  # current position
        self.start = 0  # start of the pending token
        self.line = 1  # 1 + newlines before pos
        self.start_line = 1
        self.paren_depth = 0
        self.inside_action = False
        self._item: Item | None = None
        self._eof = False  # next() hit the end (backup() must not step back then)

    # -- scanning primitives ------------------------------------------------------------

    def _next(self) -> str:
        if self.pos >= len(self.text):
            self._eof = True
            return ""
        c = self.text[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def _backup(self) -> None:
        if not self._eof and self.pos > 0:
            self.pos -= 1
            if self.text[self.pos] == "\n":
                self.line -= 1

    def _peek(self) -> str:
        c = self._next()
        self._backup()
        return c

    def _accept(self, valid: str) -> bool:
        c = self._next()
        if c and c in valid:
            return True
        self._backup()
        return False

    def _accept_run(self, valid: str) -> None:
        while True:
            c = self._next()
            if not c or c not in valid:
                break
        self._backup()

    def _this_item(self, typ: ItemType) -> Item:
        item = Item(typ, self.start, self.text[self.start : self.pos], self.start_line)
        self.start = self.pos
        self.start_line = self.line
        return item

    def _emit(self, typ: ItemType) -> None:
        self._item = self._this_item(typ)

    def _ignore(self) -> None:
        self.line += self.text.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def _errorf(self, message: str) -> None:
        self._item = Item(ItemType.ERROR, self.start, message, self.start_line)
        # Stop: every later call answers EOF, as Go's lexer does after an error.
        self.text = self.text[:0]
        self.pos = self.start = 0

    def next_item(self) -> Item:
        """The next token; ``EOF`` forever after the input (or an error) ends."""
        self._item = Item(ItemType.EOF, self.pos, "EOF", self.start_line)
        self._eof = False
        state: _State | None = _lex_inside_action if self.inside_action else _lex_text
        while state is not None:
            state = state(self)
        return self._item

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at ``}}``, with a trim marker before it)."""
        if _has_right_trim(self.text, self.pos) and self.text.startswith(_RIGHT, self.pos + 2):
            return True, True
        return self.text.startswith(_RIGHT, self.pos), False

    def _at_terminator(self) -> bool:
        c = self._peek()
        if c == "" or c in _SPACE or c in ".,|:)(":
            return True
        return self.text.startswith(_RIGHT, self.pos)


# -- states -----------------------------------------------------------------------------


def _lex_text(lx: Lexer) -> _State | None:
    x = lx.text.find(_LEFT, lx.pos)
    if x >= 0:
        if x > lx.pos:
            lx.pos = x
            trim = 0
            if _has_left_trim(lx.text, x + len(_LEFT)):
                segment = lx.text[lx.start : x]
                trim = len(segment) - len(segment.rstrip(_SPACE))
            lx.pos -= trim
            lx.line += lx.text.count("\n", lx.start, lx.pos)
            item = lx._this_item(ItemType.TEXT)
            lx.pos += trim
            lx._ignore()
            if item.val:
                lx._item = item
                return None
        return _lex_left_delim
    lx.pos = len(lx.text)
    if lx.pos > lx.start:
        lx.line += lx.text.count("\n", lx.start, lx.pos)
        lx._emit(ItemType.TEXT)
        return None
    lx._emit(ItemType.EOF)
    return None


def _lex_left_delim(lx: Lexer) -> _State | None:
    lx.pos += len(_LEFT)
    trim = _has_left_trim(lx.text, lx.pos)
    after = 2 if trim else 0
    if lx.text.startswith(_LEFT_COMMENT, lx.pos + after):
        lx.pos += after
        lx._ignore()
        return _lex_comment
    item = lx._this_item(ItemType.LEFT_DELIM)
    lx.inside_action = True
    lx.pos += after
    lx._ignore()
    lx.paren_depth = 0
    lx._item = item
    return None


def _lex_comment(lx: Lexer) -> _State | None:
    lx.pos += len(_LEFT_COMMENT)
    x = lx.text.find(_RIGHT_COMMENT, lx.pos)
    if x < 0:
        lx._errorf("unclosed comment")
        return None
    lx.pos = x + len(_RIGHT_COMMENT)
    delim, trim = lx.at_right_delim()
    if not delim:
        lx._errorf("comment ends before closing delimiter")
        return None
    lx.line += lx.text.count("\n", lx.start, lx.pos)
    lx._this_item(ItemType.TEXT)  # the comment itself: dropped (no ParseComments mode)
    if trim:
        lx.pos += 2
    lx.pos += len(_RIGHT)
    if trim:
        lx.pos = _skip_space(lx.text, lx.pos)
    lx._ignore()
    return _lex_text


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _lex_right_delim(lx: Lexer) -> _State | None:
    _, trim = lx.at_right_delim()
    if trim:
        lx.pos += 2
        lx._ignore()
    lx.pos += len(_RIGHT)
    item = lx._this_item(ItemType.RIGHT_DELIM)
    if trim:
        lx.pos = _skip_space(lx.text, lx.pos)
        lx._ignore()
    lx.inside_action = False
    lx._item = item
    return None


def _lex_inside_action(lx: Lexer) -> _State | None:
    delim, _ = lx.at_right_delim()
    if delim:
        if lx.paren_depth == 0:
            return _lex_right_delim
        lx._errorf("unclosed left paren")
        return None
    c = lx._next()
    if c == "":
        lx._errorf("unclosed action")
    elif c in _SPACE:
        lx._backup()  # put the space back in case it is " -}}"
        return _lex_space
    elif c == "=":
        lx._emit(ItemType.ASSIGN)
    elif c == ":":
        if lx._next() != "=":
            lx._errorf("expected :=")
        else:
            lx._emit(ItemType.DECLARE)
    elif c == "|":
        lx._emit(ItemType.PIPE)
    elif c == '"':
        return _lex_quote
    elif c == "`":
        return _lex_raw_quote
    elif c == "$":
        return _lex_variable
    elif c == "'":
        return _lex_char
    elif c == "." and lx.pos < len(lx.text) and not "0" <= lx.text[lx.pos] <= "9":
        return _lex_field
    elif c in "+-." or "0" <= c <= "9":  # '.' followed by a digit starts a number
        lx._backup()
        return _lex_number
    elif _is_alphanumeric(c):
        lx._backup()
        return _lex_identifier
    elif c == "(":
        lx.paren_depth += 1
        lx._emit(ItemType.LEFT_PAREN)
    elif c == ")":
        lx.paren_depth -= 1
        if lx.paren_depth < 0:
            lx._errorf("unexpected right paren")
        else:
            lx._emit(ItemType.RIGHT_PAREN)
    elif c <= "\x7f" and c.isprintable():
        lx._emit(ItemType.CHAR)
    else:
        lx._errorf(f"unrecognized character in action: {_unicode_name(c)}")
    return None


def _unicode_name(c: str) -> str:
    # Go's %#U: U+0023 '#' (the character only when printable).
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        code = 0xFFFD  # an invalid byte decodes as utf8.RuneError
    shown = chr(code)
    return f"U+{code:04X} '{shown}'" if shown.isprintable() else f"U+{code:04X}"


def _lex_space(lx: Lexer) -> _State | None:
    spaces = 0
    while True:
        c = lx._peek()
        if c == "" or c not in _SPACE:
            break
        lx._next()
        spaces += 1
    # A space right before "-}}" belongs to the trim marker.
    if _has_right_trim(lx.text, lx.pos - 1) and lx.text.startswith(_RIGHT, lx.pos + 1):
        lx._backup()
        if spaces == 1:
            return _lex_right_delim
    lx._emit(ItemType.SPACE)
    return None


def _lex_identifier(lx: Lexer) -> _State | None:
    while True:
        c = lx._next()
        if c and _is_alphanumeric(c):
            continue
        lx._backup()
        word = lx.text[lx.start : lx.pos]
        if not lx._at_terminator():
            lx._errorf(f"bad character {_unicode_name(c) if c else 'U+FFFFFFFF'}")
        elif word in _KEYWORDS and _KEYWORDS[word] > ItemType.KEYWORD:
            lx._emit(_KEYWORDS[word])
        elif word in ("true", "false"):
            lx._emit(ItemType.BOOL)
        else:
            lx._emit(ItemType.IDENTIFIER)
        return None


def _lex_field(lx: Lexer) -> _State | None:
    return _lex_field_or_variable(lx, ItemType.FIELD)


def _lex_variable(lx: Lexer) -> _State | None:
    if lx._at_terminator():  # a lone "$"
        lx._emit(ItemType.VARIABLE)
        return None
    return _lex_field_or_variable(lx, ItemType.VARIABLE)


def _lex_field_or_variable(lx: Lexer, typ: ItemType) -> _State | None:
    if lx._at_terminator():  # nothing interesting follows: "." or "$"
        lx._emit(ItemType.VARIABLE if typ == ItemType.VARIABLE else ItemType.DOT)
        return None
    c = ""
    while True:
        c = lx._next()
        if not c or not _is_alphanumeric(c):
            lx._backup()
            break
    if not lx._at_terminator():
        lx._errorf(f"bad character {_unicode_name(c) if c else 'U+FFFFFFFF'}")
        return None
    lx._emit(typ)
    return None


def _lex_char(lx: Lexer) -> _State | None:
    return _lex_escaped(lx, "'", ItemType.CHAR_CONSTANT, "unterminated character constant")


def _lex_escaped(lx: Lexer, close: str, item: ItemType, unterminated: str) -> _State | None:
    """A quoted constant up to ``close`` on the same line, backslash escapes skipped."""
    while True:
        c = lx._next()
        if c == "\\":
            c = lx._next()
            if c and c != "\n":
                continue
        if c in ("", "\n"):
            lx._errorf(unterminated)
            return None
        if c == close:
            break
    lx._emit(item)
    return None


def _lex_number(lx: Lexer) -> _State | None:
    if not _scan_number(lx):
        lx._errorf(f"bad number syntax: {quote(lx.text[lx.start : lx.pos])}")
        return None
    sign = lx._peek()
    if sign in ("+", "-"):
        # Complex: 1+2i. No spaces, must end in 'i'.
        if not _scan_number(lx) or lx.text[lx.pos - 1] != "i":
            lx._errorf(f"bad number syntax: {quote(lx.text[lx.start : lx.pos])}")
            return None
        lx._emit(ItemType.COMPLEX)
    else:
        lx._emit(ItemType.NUMBER)
    return None


_DECIMAL = "0123456789_"
_HEX = "0123456789abcdefABCDEF_"


def _scan_number(lx: Lexer) -> bool:
    # Not a perfect number scanner ("089" and "0x0.2" pass): the parser's strconv rules
    # refuse what is wrong, as in Go.
    lx._accept("+-")
    digits = _DECIMAL
    if lx._accept("0"):
        if lx._accept("xX"):
            digits = _HEX
        elif lx._accept("oO"):
            digits = "01234567_"
        elif lx._accept("bB"):
            digits = "01_"
    lx._accept_run(digits)
    if lx._accept("."):
        lx._accept_run(digits)
    if digits is _DECIMAL and lx._accept("eE"):
        lx._accept("+-")
        lx._accept_run("0123456789_")
    if digits is _HEX and lx._accept("pP"):
        lx._accept("+-")
        lx._accept_run("0123456789_")
    lx._accept("i")
    c = lx._peek()
    if c and _is_alphanumeric(c):
        lx._next()
        return False
    return True


def _lex_quote(lx: Lexer) -> _State | None:
    return _lex_escaped(lx, '"', ItemType.STRING, "unterminated quoted string")


def _lex_raw_quote(lx: Lexer) -> _State | None:
    x = lx.text.find("`", lx.pos)
    if x < 0:
        lx._errorf("unterminated raw quoted string")
        return None
    lx.line += lx.text.count("\n", lx.pos, x + 1)
    lx.pos = x + 1
    lx._emit(ItemType.RAW_STRING)
    return None
