"""Job file templates: the part of Go's ``text/template`` that Bacalhau's job files use.

``bacalhau job run FILE -V name=value`` renders FILE before parsing it, as Bacalhau does
(``pkg/lib/template``, ``missingkey=error``). Supported: variable substitution
(``{{.name}}``, ``{{ .name }}``), Go's whitespace trim markers (``{{- .name -}}``) and
comments (``{{/* ... */}}``). Anything else (conditions, loops, pipelines, functions) is
refused with an error naming the action, rather than submitted with its braces printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bacalhau.errors import InvalidJobSpec

__all__ = ["has_template_actions", "render_template"]

_OPEN, _CLOSE = "{{", "}}"
_VARIABLE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
#: Go's trim markers: "{{- " and " -}}" (the space is part of the marker).
_LEFT_TRIM = re.compile(r"-[ \t\r\n]")
_RIGHT_TRIM = re.compile(r"[ \t\r\n]-$")
_HINT_UNSUPPORTED = (
    "only variable substitution ({{.name}}) is supported in job files; pass --no-template "
    "to submit the file as it is"
)


def has_template_actions(text: str) -> bool:
    """Whether ``text`` holds anything a template would change."""
    return _OPEN in text


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def render_template(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``{{.name}}`` with ``variables["name"]``.

    Raises :class:`InvalidJobSpec` naming the variable when one is not given (Go's
    ``missingkey=error``), and naming the action when it is not a variable substitution.
    """
    out: list[str] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            raise InvalidJobSpec(
                f"template: unclosed action at line {_line_of(text, start)}",
                field="template",
                hint="close it with }} or pass --no-template",
            )
        inner = text[start + len(_OPEN) : end]
        literal = text[pos:start]
        if _LEFT_TRIM.match(inner):
            literal = literal.rstrip(" \t\r\n")
            inner = inner[1:]
        trim_right = bool(_RIGHT_TRIM.search(inner))
        if trim_right:
            inner = inner[:-1]
        out.append(literal)
        out.append(_evaluate(inner.strip(), variables, text, start))
        pos = end + len(_CLOSE)
        if trim_right:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1


def _evaluate(action: str, variables: Mapping[str, str], text: str, start: int) -> str:
    line = _line_of(text, start)
    if action.startswith("/*") and action.endswith("*/"):
        return ""
    match = _VARIABLE.fullmatch(action)
    if match is None:
        raise InvalidJobSpec(
            f"template: unsupported action {{{{{action}}}}} at line {line}",
            field="template",
            hint=_HINT_UNSUPPORTED,
        )
    name = match.group(1)
    if name not in variables:
        raise InvalidJobSpec(
            f'template: map has no entry for key "{name}" ({{{{.{name}}}}} at line {line})',
            field=f"template.{name}",
            hint=f"pass -V {name}=VALUE, or -E to take variables from the environment",
        )
    return variables[name]
