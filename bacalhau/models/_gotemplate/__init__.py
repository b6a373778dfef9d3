"""Job file templates: Go's ``text/template``, as Bacalhau executes job files.

``bacalhau job run FILE -V name=value -E PATTERN`` renders FILE before parsing it, as
Bacalhau's CLI does (``pkg/lib/template``): ``template.New("").Option("missingkey=error")``,
no functions beyond the built-in ones, and a ``map[string]string`` of the variables as data.
So a job file may use everything ``text/template`` offers over that map: ``{{.name}}``,
``{{- -}}`` trim markers, comments, pipelines, variables, ``if``/``else if``/``with``/
``range`` (over the map, sorted, or an integer) with ``break``/``continue``, ``define``/
``template``/``block``, and the built-ins (``and or not len index slice print printf
println eq ne lt le gt ge html js urlquery call``). A missing ``.name`` is an error naming
it; ``{{or (index . "name") "default"}}`` makes a variable optional, as Bacalhau's docs do.

The package is a port of Go's lexer, parser, executor and the ``fmt`` printing they use
(``_lex``, ``_parse``, ``_exec``, ``_funcs``, ``_fmt``). Where Go has no bound a hostile
file could exploit (nesting, output size, work), there is one here; see ``_exec``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._gotemplate._exec import ExecError, execute
from bacalhau.models._gotemplate._parse import ParseError, parse
from bacalhau.models._gotemplate._strconv import quote
from bacalhau.models._gotemplate._values import go_string

__all__ = ["has_template_actions", "render_template"]

_HINT = (
    "job files are Go templates (text/template, as Bacalhau renders them): fix the "
    "action, or pass --no-template to submit the file as it is"
)
_HINT_LIMIT = "simplify the template, or pass --no-template to submit the file as it is"
_SNIPPET = 60


def has_template_actions(text: str) -> bool:
    """Whether ``text`` holds an action (``{{``), so that rendering may change it."""
    return "{{" in text


def render_template(text: str, variables: Mapping[str, str]) -> str:
    """Render ``text`` as Go's ``text/template`` does with ``variables`` as data.

    Raises :class:`InvalidJobSpec` for any parse or execution error: ``field`` is
    ``template.<name>`` when the variable ``name`` is missing (Go's ``missingkey=error``),
    ``template`` otherwise; the message names the line, the column where there is one, and
    the action.
    """
    if not has_template_actions(text):
        return text
    source = go_string(text)
    data = {go_string(k): go_string(v) for k, v in variables.items()}
    try:
        return execute(parse(source), data, size=len(source))
    except ParseError as e:
        raise _parse_error(source, e) from None
    except ExecError as e:
        raise _exec_error(source, e) from None
    except RecursionError:
        # The nesting bounds keep the walk far inside Python's stack; this is for callers
        # that are themselves deep already.
        raise InvalidJobSpec(
            "template: nested too deeply to render here", field="template", hint=_HINT_LIMIT
        ) from None


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - line_start + 1


def _snippet(text: str, pos: int) -> str:
    """The action around ``pos``, as the user wrote it (shortened)."""
    start = text.rfind("{{", 0, pos + 2)
    if start < 0:
        return ""
    end = text.find("}}", start + 2)
    stop = len(text) if end < 0 else end + 2
    newline = text.find("\n", start)
    if end < 0 and newline >= 0:
        stop = newline
    shown = text[start:stop].replace("\n", "\\n")
    return shown if len(shown) <= _SNIPPET else shown[: _SNIPPET - 3] + "..."


def _parse_error(text: str, e: ParseError) -> InvalidJobSpec:
    message = f"template: line {e.line}: {e.message}"
    if e.message == "unexpected EOF" and e.open_pos is not None:
        line, _ = _line_col(text, e.open_pos)
        message += f": {_snippet(text, e.open_pos)} (line {line}) has no {{{{end}}}}"
    else:
        snippet = _snippet(text, min(e.pos, len(text)))
        if snippet:
            message += f", in {snippet}"
    return InvalidJobSpec(message, field="template", hint=_HINT)


def _exec_error(text: str, e: ExecError) -> InvalidJobSpec:
    where = "template:"
    if e.node is not None:
        line, col = _line_col(text, e.node.pos)
        where += f" line {line}, column {col},"
    if e.template:
        where += f" in template {quote(e.template)},"
    context = "" if e.node is None else _shorten(e.node.string())
    if context:
        where += f" at <{context}>:"
    else:
        where = where.rstrip(",") + ":"
    message = f"{where} {e.message}"
    if e.key:
        key = e.key
        return InvalidJobSpec(
            message,
            field=f"template.{key}",
            hint=(
                f"pass -V {key}=VALUE, or -E to take it from the environment; "
                f'write {{{{or (index . {quote(key)}) ""}}}} where it is optional'
            ),
        )
    return InvalidJobSpec(message, field="template", hint=_HINT_LIMIT if e.limit else _HINT)


def _shorten(context: str) -> str:
    context = context.replace("\n", "\\n")
    return context if len(context) <= _SNIPPET else context[: _SNIPPET - 3] + "..."
