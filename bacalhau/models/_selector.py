"""Kubernetes-style label selectors: parsing and matching.

Used for job ``Constraints`` (``--constraints``), the ``labels`` filter of job and node listings,
and node ranking. The grammar is the Kubernetes one, comma-separated terms::

    key            the label exists              !key           the label does not exist
    key=v, key==v  equals                        key!=v         differs (or is absent)
    key in (a,b)   one of                        key notin (a,b) none of (or is absent)
    key gt 1       integer greater than          key lt 1       integer less than

``!=`` and ``notin`` also match objects that lack the key (Bacalhau's CLI relies on it: its
default job filter is ``bacalhau_canary != true``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bacalhau.errors import BadQuery, InvalidJobSpec
from bacalhau.models._job import LabelSelectorRequirement

__all__ = ["format_selector", "parse_selector", "requirement_matches", "selector_matches"]

_KEY_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")
_INT_RE = re.compile(r"^[-+]?\d+$")
#: Characters that end a bare word; everything else may appear in keys and values.
_SPECIAL = set("!=<>(),")


@dataclass(slots=True)
class _Token:
    kind: str  # "word" or the literal operator / punctuation
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith(("==", "!="), i):
            out.append(_Token(text[i : i + 2], text[i : i + 2], i))
            i += 2
            continue
        if ch in _SPECIAL:
            out.append(_Token(ch, ch, i))
            i += 1
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
            i += 1
        out.append(_Token("word", text[start:i], start))
    return out


class _Parser:
    def __init__(self, text: str, field: str, error: type[BadQuery] | type[InvalidJobSpec]) -> None:
        self.text = text
        self.field = field
        self.error = error
        self.tokens = _tokenize(text)
        self.i = 0
        self.term_start = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def term_text(self) -> str:
        """The text of the term being parsed, up to the next top-level comma."""
        depth = 0
        end = len(self.text)
        for j in range(self.term_start, len(self.text)):
            c = self.text[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth = max(0, depth - 1)
            elif c == "," and depth == 0:
                end = j
                break
        return self.text[self.term_start : end].strip()

    def fail(self, why: str) -> BadQuery | InvalidJobSpec:
        term = self.term_text() or self.text.strip()
        return self.error(
            f"invalid label selector term {term!r}: {why}",
            field=self.field,
            hint="use Kubernetes selector syntax, e.g. 'env=prod,zone in (a,b),!gpu,rank gt 2'",
        )

    def key(self, tok: _Token | None) -> str:
        if tok is None or tok.kind != "word":
            raise self.fail("expected a label key")
        if not _KEY_RE.match(tok.text):
            raise self.fail(f"invalid label key {tok.text!r}")
        return tok.text

    def value(self, *, allow_empty: bool) -> str:
        tok = self.peek()
        if tok is None or tok.kind == ",":
            if allow_empty:
                return ""
            raise self.fail("expected a value")
        if tok.kind != "word":
            raise self.fail(f"unexpected {tok.text!r}, expected a value")
        self.i += 1
        return tok.text

    def value_set(self) -> list[str]:
        tok = self.take()
        if tok is None or tok.kind != "(":
            raise self.fail("expected '(' to open the value set")
        values: list[str] = []
        while True:
            tok = self.take()
            if tok is None:
                raise self.fail("missing ')' to close the value set")
            if tok.kind == ")":
                if not values:
                    raise self.fail("the value set is empty")
                return values
            if tok.kind != "word":
                raise self.fail(f"unexpected {tok.text!r} in the value set")
            values.append(tok.text)
            sep = self.take()
            if sep is None:
                raise self.fail("missing ')' to close the value set")
            if sep.kind == ")":
                return values
            if sep.kind != ",":
                raise self.fail(f"unexpected {sep.text!r} in the value set")

    def requirement(self) -> LabelSelectorRequirement:
        first = self.take()
        if first is not None and first.kind == "!":
            return LabelSelectorRequirement(key=self.key(self.take()), operator="!")
        key = self.key(first)
        op_tok = self.peek()
        if op_tok is None or op_tok.kind == ",":
            return LabelSelectorRequirement(key=key, operator="exists")
        self.i += 1
        if op_tok.kind in ("=", "==", "!="):
            value = self.value(allow_empty=True)
            return LabelSelectorRequirement(key=key, operator=op_tok.kind, values=[value])
        word = op_tok.text.lower() if op_tok.kind == "word" else op_tok.kind
        if word in ("in", "notin"):
            return LabelSelectorRequirement(key=key, operator=word, values=self.value_set())
        if word in ("gt", "lt", ">", "<"):
            value = self.value(allow_empty=False)
            if not _INT_RE.match(value):
                raise self.fail(f"{word} needs an integer, got {value!r}")
            op = "gt" if word in ("gt", ">") else "lt"
            return LabelSelectorRequirement(key=key, operator=op, values=[value])
        raise self.fail(f"unknown operator {op_tok.text!r}")

    def parse(self) -> list[LabelSelectorRequirement]:
        reqs: list[LabelSelectorRequirement] = []
        if not self.tokens:
            return reqs
        while True:
            tok = self.peek()
            self.term_start = tok.pos if tok is not None else len(self.text)
            reqs.append(self.requirement())
            sep = self.take()
            if sep is None:
                return reqs
            if sep.kind != ",":
                raise self.fail(f"unexpected {sep.text!r}; separate terms with ','")
            if self.peek() is None:
                self.term_start = sep.pos
                raise self.fail("trailing ','")


def parse_selector(
    text: str,
    *,
    field: str = "labels",
    error: type[BadQuery] | type[InvalidJobSpec] = BadQuery,
) -> list[LabelSelectorRequirement]:
    """Parse a selector such as ``"env=prod, zone notin (a,b), !gpu"``.

    An empty or blank text selects everything (no requirements). A malformed term raises
    ``error`` (:class:`BadQuery` for query parameters, :class:`InvalidJobSpec` for job
    constraints) whose message quotes the term and whose ``field`` is ``field``.
    """
    return _Parser(text, field, error).parse()


def _as_int(text: str) -> int | None:
    return int(text) if _INT_RE.match(text.strip()) else None


def is_integer_label(text: str) -> bool:
    """Whether ``gt`` and ``lt`` can compare ``text`` (an integer, as Kubernetes asks)."""
    return _as_int(text) is not None


def requirement_matches(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    """Kubernetes semantics for one requirement."""
    op = req.operator.strip().lower()
    present = req.key in labels
    value = labels.get(req.key, "")
    if op == "exists":
        return present
    if op == "!":
        return not present
    if op in ("=", "=="):
        return present and value in req.values
    if op == "in":
        return present and value in req.values
    if op == "!=":
        return not present or value not in req.values
    if op == "notin":
        return not present or value not in req.values
    if op in ("gt", "lt"):
        if not present or len(req.values) != 1:
            return False
        have, want = _as_int(value), _as_int(req.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "gt" else have < want
    return False


def selector_matches(reqs: Iterable[LabelSelectorRequirement], labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy every requirement (an empty selector matches everything)."""
    return all(requirement_matches(r, labels) for r in reqs)


def format_selector(reqs: Iterable[LabelSelectorRequirement]) -> str:
    """The inverse of :func:`parse_selector` (for display and for query strings)."""
    parts: list[str] = []
    for r in reqs:
        op = r.operator.strip()
        if op == "exists":
            parts.append(r.key)
        elif op == "!":
            parts.append(f"!{r.key}")
        elif op in ("in", "notin"):
            parts.append(f"{r.key} {op} ({','.join(r.values)})")
        else:
            parts.append(f"{r.key} {op} {r.values[0] if r.values else ''}".rstrip())
    return ",".join(parts)
