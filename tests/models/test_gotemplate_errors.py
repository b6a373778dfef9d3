"""Every template error is an InvalidJobSpec naming where and what: Go's message (the
text Bacalhau would print after "template: :LINE:COL:"), the line, the column when Go
has a node to point at, and the action; ``template.<key>`` as the field for a missing
variable, ``template`` otherwise, and a hint.
"""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import render_template

DATA = {"name": "world", "n": "3"}


def _error(template: str) -> InvalidJobSpec:
    with pytest.raises(InvalidJobSpec) as err:
        render_template(template, DATA)
    return err.value


# -- missing variables: Go's missingkey=error ----------------------------------------------


def test_missing_variable_names_key_line_column_and_action() -> None:
    e = _error("Name: x\nImage: {{ .image }}\n")
    assert e.field == "template.image"
    assert e.message == (
        'template: line 2, column 11, at <.image>: map has no entry for key "image"'
    )
    assert "-V image=VALUE" in e.hint and "-E" in e.hint
    assert '{{or (index . "image") ""}}' in e.hint


def test_missing_variable_inside_a_defined_template_names_it() -> None:
    e = _error('{{define "t"}}\n  {{.y}}{{end}}{{template "t" .}}')
    assert e.field == "template.y"
    assert e.message == (
        'template: line 2, column 5, in template "t", at <.y>: map has no entry for key "y"'
    )


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("{{$.gone}}", "gone"),  # through $
        ("{{range .gone}}{{end}}", "gone"),  # in a control's pipeline
        ("{{.n | printf `%s%s` .gone}}", "gone"),  # as an argument
        ("{{and 1 .gone}}", "gone"),  # and/or evaluate until the deciding argument
        ("{{with .name}}{{$.gone}}{{end}}", "gone"),
    ],
)
def test_missing_variable_anywhere(template: str, key: str) -> None:
    e = _error(template)
    assert e.field == f"template.{key}"
    assert f'map has no entry for key "{key}"' in e.message


# -- parse errors: Go's message, its line, and the action ---------------------------------

PARSE_ERRORS: list[tuple[str, str]] = [
    # lexer
    ("{{.name", "template: line 1: unclosed action, in {{.name"),
    ("line1\n{{", "template: line 2: unclosed action, in {{"),
    ('line1\n{{"x"\n"y"\n', "template: line 4: unclosed action started at line 2"),
    ("{{/* never closed", "unclosed comment"),
    ("{{/* c */ }}", "comment ends before closing delimiter"),
    ("{{ /* c */ }}", 'unexpected "/" in command'),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{`abc}}", "unterminated raw quoted string"),
    ("{{'a}}", "unterminated character constant"),
    ("{{a#}}", "bad character U+0023 '#'"),
    ("{{.name (1 2}}", "unclosed left paren"),
    ("{{1 ) }}", "unexpected right paren"),
    ("{{.x:y}}", "expected :="),
    ("{{1a}}", 'bad number syntax: "1a"'),
    ("{{\u00a7}}", "unrecognized character in action: U+00A7 '\u00a7'"),
    # literals, by strconv's rules
    ("{{'ab'}}", "malformed character constant: 'ab'"),
    ("{{''}}", "invalid syntax"),
    ('{{"\\q"}}', "invalid syntax"),
    ('{{"\\\'"}}', "invalid syntax"),
    ('{{"\\ud800"}}', "invalid syntax"),
    ("{{0xi}}", 'illegal number syntax: "0xi"'),
    ("{{1__0}}", 'illegal number syntax: "1__0"'),
    ("{{0x1.8}}", 'illegal number syntax: "0x1.8"'),
    ("{{1e400}}", 'illegal number syntax: "1e400"'),
    ("{{08}}", 'integer overflow: "08"'),  # Go's word for an invalid octal
    ("{{99999999999999999999}}", 'integer overflow: "99999999999999999999"'),
    # structure
    ("{{if .name}}x", "unexpected EOF: {{if .name}} (line 1) has no {{end}}"),
    ("a\n{{range .}}\n{{if 1}}x{{end}}", "template: line 3: unexpected EOF: {{range .}} (line 2)"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{if 1}}a{{else}}b{{else}}c{{end}}", "expected end; found {{else}}"),
    ('{{define "t"}}a{{else}}b{{end}}', "unexpected {{else}} in define clause"),
    ('{{block "b" .}}a{{else}}b{{end}}', "unexpected {{else}} in block clause"),
    ('{{if 1}}{{define "a"}}{{end}}{{end}}', "unexpected <define> in command"),
    ("{{define .name}}{{end}}", 'unexpected ".name" in define clause'),
    ("{{template .name}}", 'unexpected ".name" in template clause'),
    ('{{block "b"}}{{end}}', "missing value for block clause"),
    (
        '{{define "a"}}x{{end}}{{define "a" }}y{{end}}',
        'multiple definition of template "a", in {{define "a" }}',  # the second one
    ),
    (
        '{{define "b"}}X{{end}}{{block "b" .}}d{{end}}',
        'multiple definition of template "b", in {{block "b" .}}',
    ),
    ('{{define ""}}x{{end}}y', 'multiple definition of template ""'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{range .}}{{else}}{{continue}}{{end}}", "{{continue}} outside {{range}}"),
    ('{{range .}}{{define "t"}}{{end}}{{end}}', "unexpected <define> in command"),
    ("{{range .}}{{break 1}}{{end}}", 'unexpected "1" in {{break}}'),
    # pipelines and operands
    ("{{}}", "missing value for command"),
    ("{{\n}}", "template: line 2: missing value for command"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{( )}}", "missing value for parenthesized pipeline"),
    ("{{12|false}}", "non executable command in pipeline stage 2"),
    ("{{.name | 3}}", "non executable command in pipeline stage 2"),
    ("{{true.x}}", 'unexpected . after term "true"'),
    ('{{"s".x}}', 'unexpected . after term "\\"s\\""'),
    ("{{printf 3`x`}}", 'unexpected "`x`" in operand'),
    ("{{printf `x`.}}", "unexpected <.> in operand"),
    ("{{printf 3, 4}}", 'unexpected "," in operand'),
    # functions and variables exist only where Go has them
    ("{{upper .name}}", 'function "upper" not defined'),
    ("{{.name | default `x`}}", 'function "default" not defined'),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{with $x := 1}}{{end}}{{$x}}", 'undefined variable "$x"'),
    ('{{$x := 1}}{{define "t"}}{{$x}}{{end}}', 'undefined variable "$x"'),
    ("{{range $k, $v, $w := .}}{{end}}", "too many declarations in range"),
    ("{{range $k, 1 := .}}{{end}}", "range can only initialize variables"),
    ("{{range $k,}}{{end}}", "missing value for range"),
    ("{{with $a, $b := 1}}{{end}}", "too many declarations in with"),
    ("{{$a,$b := 1}}", "too many declarations in command"),
    ("{{$x := 1}}{{with $x.y := 3}}{{end}}", 'unexpected ":=" in operand'),
]


@pytest.mark.parametrize(("template", "message"), PARSE_ERRORS, ids=[p[0] for p in PARSE_ERRORS])
def test_parse_errors(template: str, message: str) -> None:
    e = _error(template)
    assert e.field == "template"
    assert message in e.message
    assert e.message.startswith("template: line ")
    assert "--no-template" in e.hint


def test_parse_error_shows_the_action() -> None:
    e = _error("Name: x\nImage: {{ .image | lower }}\n")
    assert e.message == ('template: line 2: function "lower" not defined, in {{ .image | lower }}')


# -- execution errors: Go's message with the node it stopped at ------------------------------

EXEC_ERRORS: list[tuple[str, str]] = [
    # fields on what is not the map
    (
        "{{.name.first}}",
        "line 1, column 8, at <.name.first>: can't evaluate field first in type string",
    ),
    ("{{$x := 1}}{{$x.y}}", "at <$x.y>: can't evaluate field y in type int"),
    ('{{(index . "name").x}}', 'at <"name">: can\'t evaluate field x in type string'),
    ('{{define "t"}}{{.x}}{{end}}{{template "t"}}', 'nil data; no entry for key "x"'),
    ("{{.name 1}}", "at <.name>: name is not a method but has arguments"),
    ("{{.n | .name}}", "at <.name>: name is not a method but has arguments"),
    # commands that are no function
    ("{{1 2}}", "at <1>: can't give argument to non-function 1"),
    ("{{(1) 2}}", "can't give argument to non-function 1"),
    ("{{$x := 1}}{{$x 2}}", "at <$x>: can't give argument to non-function $x"),
    ("{{nil}}", "at <nil>: nil is not a command"),
    ("{{if nil}}{{end}}", "nil is not a command"),
    ("{{(nil).x}}", "nil is not a command"),
    ("{{9223372036854775808}}", "9223372036854775808 overflows int"),
    ("{{$x = 1}}", "at <1>: undefined variable: $x"),
    # templates
    ('{{template "none"}}', 'at <{{template "none"}}>: template "none" not defined'),
    # argument counts and types, before the call
    ("{{and}}", "at <and>: wrong number of args for and: want at least 1 got 0"),
    ("{{not}}", "wrong number of args for not: want 1 got 0"),
    ("{{not 1 2}}", "wrong number of args for not: want 1 got 2"),
    ("{{ne 1}}", "wrong number of args for ne: want 2 got 1"),
    ("{{1 | len 2}}", "wrong number of args for len: want 1 got 2"),
    ("{{printf}}", "wrong number of args for printf: want at least 1 got 0"),
    ("{{printf 1}}", "at <1>: expected string; found 1"),
    ("{{printf true}}", "expected string; found true"),
    ("{{printf .}}", "at <.>: wrong type for value; expected string; got map[string]string"),
    ("{{printf nil}}", "cannot assign nil to string"),
    ("{{printf (len .)}}", "wrong type for value; expected string; got int"),
    ("{{1 | printf}}", "at <printf>: wrong type for value; expected string; got int"),
    ("{{printf (and nil 1)}}", "invalid value; expected string"),
    # the built-ins' own errors
    ("{{len 3}}", "at <len 3>: error calling len: len of type int"),
    ("{{len nil}}", "error calling len: reflect: call of reflect.Value.Type on zero Value"),
    ("{{index . 1}}", "error calling index: value has type int; should be string"),
    ("{{index . nil}}", "error calling index: value is nil; should be of type string"),
    ('{{index . "name" "x"}}', "error calling index: cannot index slice/array with type string"),
    ('{{index "abc" 5}}', "error calling index: index out of range: 5"),
    ('{{index "abc" -1}}', "error calling index: index out of range: -1"),
    ('{{index "abc" 3}}', "error calling index: reflect: string index out of range"),
    ('{{index "abc" 1.0}}', "error calling index: cannot index slice/array with type float64"),
    ('{{index "abc" nil}}', "error calling index: cannot index slice/array with nil"),
    ("{{index nil 0}}", "error calling index: index of untyped nil"),
    ("{{index 1 0}}", "error calling index: can't index item of type int"),
    ('{{index (index "a" 0) 0}}', "error calling index: can't index item of type uint8"),
    ('{{slice "abc" 2 1}}', "error calling slice: invalid slice index: 2 > 1"),
    ('{{slice "abc" 4}}', "error calling slice: index out of range: 4"),
    ('{{slice "abc" 1 2 3}}', "error calling slice: cannot 3-index slice a string"),
    ('{{slice "abc" 1 2 3 4}}', "error calling slice: too many slice indexes: 4"),
    ("{{slice . 1}}", "error calling slice: can't slice item of type map[string]string"),
    ("{{slice nil}}", "error calling slice: slice of untyped nil"),
    ("{{eq 1}}", "error calling eq: missing argument for comparison"),
    ('{{eq "a" 1}}', "error calling eq: incompatible types for comparison: string and int"),
    ("{{eq 1 1.0}}", "error calling eq: incompatible types for comparison: int and float64"),
    ("{{eq .n 3}}", "incompatible types for comparison: string and int"),
    ("{{eq . .}}", "error calling eq: non-comparable type map[n:3 name:world]: map[string]string"),
    ('{{eq . "x"}}', "incompatible types for comparison: map[string]string and string"),
    ("{{lt true false}}", "error calling lt: invalid type for comparison"),
    ("{{lt 1i 2i}}", "error calling lt: invalid type for comparison"),
    ("{{lt . 1}}", "error calling lt: invalid type for comparison"),
    ("{{lt nil 1}}", "error calling lt: invalid type for comparison"),
    ("{{gt 1 2.5}}", "error calling gt: incompatible types for comparison: int and float64"),
    # call: there are no function values in a job file's data
    ("{{call}}", "wrong number of args for call: want at least 1 got 0"),
    ("{{call .name}}", "at <call .name>: error calling call: non-function .name of type string"),
    ("{{call nil}}", "error calling call: call of nil"),
    ("{{1 | call}}", "error calling call: non-function <int Value> of type int"),
    ('{{call (len "test")}}', 'error calling call: non-function len "test" of type int'),
    # range
    ("{{range .name}}{{end}}", "at <.name>: range can't iterate over world"),
    ("{{range true}}{{end}}", "range can't iterate over true"),
    ("{{range 1.5}}{{end}}", "range can't iterate over 1.5"),
    ("{{range $i, $v := 3}}{{end}}", "at <3>: can't use 3 to iterate over more than one variable"),
]


@pytest.mark.parametrize(("template", "message"), EXEC_ERRORS, ids=[e[0] for e in EXEC_ERRORS])
def test_execution_errors(template: str, message: str) -> None:
    e = _error(template)
    assert e.field == "template"
    assert message in e.message
    assert e.message.startswith("template: line 1, column ")
    assert "--no-template" in e.hint


def test_output_before_an_error_is_not_returned() -> None:
    # Go's Execute writes as it goes, but Bacalhau refuses the file on any error; so do we.
    e = _error("Name: {{.name}}\n{{.nope}}")
    assert e.field == "template.nope"
