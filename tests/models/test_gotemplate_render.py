"""Job file templates render as Go's text/template renders them for Bacalhau
(missingkey=error, no extra functions, the variables as a map[string]string).

Each case is a template and the output Go gives for it; the comment over each group names
the Go behaviour the cases pin down. Expected outputs follow the text/template and fmt
documentation and Go's own test tables, not this implementation.
"""

from __future__ import annotations

import pytest

from bacalhau.models import has_template_actions, render_template

DATA = {"name": "world", "n": "3", "empty": "", "start-time": "-5m"}
# Go ranges over (and prints) a map in sorted key order: empty, n, name, start-time.
MAP = "map[empty: n:3 name:world start-time:-5m]"

CASES: list[tuple[str, str, str]] = [
    # -- text and substitution: .key looks the key up in the map; $ is the data --------------
    ("plain", "no actions at all", "no actions at all"),
    ("field", "{{.name}}", "world"),
    ("field spaced", "{{ .name }}", "world"),
    ("empty value", "[{{.empty}}]", "[]"),
    ("twice", "a{{.name}}b{{.name}}c", "aworldbworldc"),
    ("dollar field", "{{$.name}}", "world"),
    ("dot prints the map", "{{.}}", MAP),
    ("dollar prints the map", "{{$}}", MAP),
    ("key that is no identifier", '{{index . "start-time"}}', "-5m"),
    ("braces in text", "a}}b{c", "a}}b{c"),
    # -- trim markers: "{{- " and " -}}" remove all adjacent ASCII space, tab, CR and LF --------
    ("trim both", "a  {{- .name -}}  b", "aworldb"),
    ("trim left all space kinds", "a \t\r\n{{- .name}}", "aworld"),
    ("trim right", "{{.name -}} \n\t b", "worldb"),
    ("trim with extra spaces", "x\n{{-  3   -}}\ny", "x3y"),
    ("dash without space is a number", "{{-3}}", "-3"),
    ("tab after dash is a trim marker", "a {{-\t3}}", "a3"),
    ("NBSP is not trimmed", "a\u00a0{{- 3}}", "a\u00a03"),
    ("trim in a control", "{{if 1 -}}\n  x\n{{- end}}", "x"),
    # -- comments: {{/* */}} right after the delimiters (or a trim marker) --------------------
    ("comment", "a{{/* note */}}b", "ab"),
    ("comment trimmed", "a {{- /* note */ -}} b", "ab"),
    ("comment over lines", "{{/* multi\nline */}}x", "x"),
    # -- pipelines: each command's result is the last argument of the next ------------------
    ("pipe into printf", '{{.name | printf "%s!"}}', "world!"),
    ("piped value is the last argument", '{{"x" | printf "%s-%s" "y"}}', "y-x"),
    ("pipe into len", "{{.name | len}}", "5"),
    ("three stages", '{{"abcdef" | slice | len}}', "6"),
    ("newlines inside an action", '{{\n"x"\n|\nprintf\n}}', "x"),
    ("parenthesised argument", '{{printf "%s/%s" (index . "start-time") .name}}', "-5m/world"),
    ("parenthesised command", '{{(index . "name")}}', "world"),
    ("field of a parenthesised value", "{{(.).name}}", "world"),
    ("pipeline inside parentheses", '{{len (.name | printf "%s%s" "x")}}', "6"),
    ("parenthesised constant", "{{(1)}}", "1"),
    # -- variables: := declares, = assigns; a declaration lasts to the end of its control -----
    ("declare", "{{$x := .name}}{{$x}}", "world"),
    ("assign", "{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("declaration prints nothing", "[{{$x := 1}}]", "[]"),
    ("shadow in if", '{{$x := "out"}}{{if 1}}{{$x := "in"}}{{$x}}{{end}}{{$x}}', "inout"),
    ("assign reaches outer", '{{$x := "out"}}{{if 1}}{{$x = "in"}}{{end}}{{$x}}', "in"),
    ("field of a variable", "{{$m := .}}{{$m.name}}", "world"),
    ("newlines around :=", "{{ $x \n := \n 1 \n }}{{$x}}", "1"),
    # -- literals: Go strings, raw strings, characters, numbers, booleans ---------------------
    ("interpreted string", '{{"a\\tb"}}', "a\tb"),
    ("raw string", "{{`a\\tb`}}", "a\\tb"),
    ("raw string drops CR", "{{`a\r\nb`}}", "a\nb"),
    ("escapes", '{{"\\x41\\101\\u00e9\\U0001F600\\\\\\""}}', 'AAé😀\\"'),
    ("bytes that are UTF-8", '{{"\\xc3\\xa9"}}', "é"),
    ("char", "{{'a'}}", "97"),
    ("char escape", "{{'\\n'}} {{'\\x41'}} {{'\\''}}", "10 65 39"),
    ("char non-ASCII", "{{'é'}}", "233"),
    ("ints", "{{42}} {{-7}} {{+5}} {{0}}", "42 -7 5 0"),
    ("int bases", "{{0x1F}} {{0X1f}} {{0o17}} {{017}} {{0b101}}", "31 31 15 15 5"),
    ("int underscores", "{{1_000_000}} {{0x_1F}} {{0b_1_0_1}}", "1000000 31 5"),
    ("largest int", "{{9223372036854775807}}", "9223372036854775807"),
    ("floats print shortest", "{{1.5}} {{0.1}} {{1.0}} {{.5}} {{-0.0}}", "1.5 0.1 1 0.5 -0"),
    (
        "float exponents as %g",
        "{{1e3}} {{1e6}} {{123456.0}} {{1234567.0}}",
        "1000 1e+06 123456 1.234567e+06",
    ),
    ("small floats", "{{0.0001}} {{0.00001}} {{2.5e-5}}", "0.0001 1e-05 2.5e-05"),
    ("hex float", "{{0x1.8p1}} {{+0x_1.e_0p+0_2}}", "3 7.5"),
    ("float underscores", "{{0_0_1_2_3.4}}", "123.4"),
    ("complex", "{{1i}} {{1+2i}} {{-1.5-2i}} {{0i}}", "(0+1i) (1+2i) (-1.5-2i) (0+0i)"),
    ("booleans", "{{true}} {{false}}", "true false"),
    (
        "constant types",
        '{{printf "%T %T %T %T %T %T" 1 1.5 "s" true 1i .}}',
        "int float64 string bool complex128 map[string]string",
    ),
    ("hex and char constants are int", "{{printf `%T %T %T` 0xef 'x' 1e3}}", "int int float64"),
    # -- if / else if / else: Go's truth (zero, empty and nil are false) ---------------------
    ("if true", "{{if .name}}yes{{end}}", "yes"),
    ("if empty string", "{{if .empty}}yes{{else}}no{{end}}", "no"),
    ("else if chain", "{{if 0}}a{{else if .empty}}b{{else if .n}}c{{else}}d{{end}}", "c"),
    ("if zero float", "{{if 0.0}}t{{else}}f{{end}} {{if 1.5}}t{{end}}", "f t"),
    ("if complex", "{{if 0i}}t{{else}}f{{end}} {{if 1.5i}}t{{end}}", "f t"),
    ("if map", "{{if .}}t{{end}}", "t"),
    ("if false", "{{if false}}t{{else}}f{{end}}", "f"),
    ("if no value", "{{if and nil 1}}t{{else}}f{{end}}", "f"),
    ("if not", "{{if not .empty}}t{{end}}", "t"),
    ("if declares", "{{if $x := .n}}{{$x}}{{end}}", "3"),
    # -- with: dot becomes the value when it is true ------------------------------------------
    ("with", "{{with .name}}[{{.}}]{{end}}", "[world]"),
    ("with else", "{{with .empty}}x{{else}}none{{end}}", "none"),
    ("with else with", "{{with .empty}}x{{else with .n}}n={{.}}{{end}}", "n=3"),
    ("with else with else", "{{with 0}}a{{else with 0}}b{{else}}c{{end}}", "c"),
    ("with declares", "{{with $x := .n}}{{$x}}{{.}}{{end}}", "33"),
    ("with keeps $", "{{with .name}}{{$.n}}{{end}}", "3"),
    # -- range: over the map in sorted key order (values as dot), over an integer -------------
    ("range values", "{{range .}}{{.}},{{end}}", ",3,world,-5m,"),
    (
        "range key and value",
        "{{range $k, $v := .}}{{$k}}={{$v}};{{end}}",
        "empty=;n=3;name=world;start-time=-5m;",
    ),
    ("range one variable is the value", "{{range $v := .}}{{$v}}|{{end}}", "|3|world|-5m|"),
    ("range integer", "{{range 3}}{{.}}{{end}}", "012"),
    ("range integer variable", "{{range $i := 3}}{{$i}}{{end}}", "012"),
    ("range zero runs else", "{{range 0}}x{{else}}none{{end}}", "none"),
    ("range negative runs else", "{{range -2}}x{{else}}none{{end}}", "none"),
    (
        "range byte keeps its type",
        '{{range $i := (index "\\x02" 0)}}{{printf "%T" $i}}{{end}}',
        "uint8uint8",
    ),
    ("range no value is empty", "{{range and nil 1}}x{{else}}none{{end}}", "none"),
    ("break", '{{range $k, $v := .}}{{if eq $k "name"}}{{break}}{{end}}{{$k}},{{end}}', "empty,n,"),
    (
        "continue",
        '{{range $k, $v := .}}{{if eq $k "name"}}{{continue}}{{end}}{{$k}},{{end}}',
        "empty,n,start-time,",
    ),
    ("break skips else", "{{range 3}}{{break}}{{else}}e{{end}}x", "x"),
    ("variables die each iteration", "{{range 2}}{{$x := .}}{{$x}}{{end}}", "01"),
    ("range assigns one", '{{$v := ""}}{{range $v = .}}{{end}}{{$v}}', "-5m"),
    (
        "range assigns two",
        '{{$k := ""}}{{$v := ""}}{{range $k, $v = .}}{{end}}{{$k}}={{$v}}',
        "start-time=-5m",
    ),
    (
        "nested range",
        "{{range $i := 2}}{{range $j := 2}}{{$i}}{{$j}} {{end}}{{end}}",
        "00 01 10 11 ",
    ),
    # -- define / template / block ---------------------------------------------------------------
    (
        "define and call",
        '{{define "g"}}Hello, {{.}}!{{end}}{{template "g" .name}}',
        "Hello, world!",
    ),
    ("call before define", '{{template "t" .}}{{define "t"}}{{.name}}{{end}}', "world"),
    ("call without pipeline", '{{define "t"}}[{{.}}]{{end}}{{template "t"}}', "[<no value>]"),
    ("dollar in a template", '{{define "t"}}{{$}}{{end}}{{template "t" "x"}}', "x"),
    ("block", '{{block "b" .name}}<{{.}}>{{end}}', "<world>"),
    (
        "block replaces an empty define",
        '{{define "b"}}  {{end}}{{block "b" .}}default{{end}}',
        "default",
    ),
    (
        "empty define keeps the full one",
        '{{define "a"}}x{{end}}{{define "a"}} {{end}}{{template "a"}}',
        "x",
    ),
    ("define outside main text", 'a{{define "t"}}T{{end}}b', "ab"),
    ("define names the main template", '{{define ""}}main{{end}}', "main"),
    (
        "recursion that ends",
        '{{define "r"}}{{if .}}{{slice . 1}}|{{template "r" (slice . 1)}}{{end}}{{end}}'
        '{{template "r" "abc"}}',
        "bc|c||",
    ),
    # -- and / or: short-circuit, returning the deciding argument (Go 1.18+) ---------------------
    ("and returns first false", '{{and 1 0 "x"}}', "0"),
    ("and returns last", '{{and 1 "x"}}', "x"),
    ("or returns first true", '{{or 0 "" "z"}}', "z"),
    ("or returns last", '{{or 0 ""}}', ""),
    ("or skips what follows", "{{or 1 .missing}}", "1"),
    ("and skips what follows", "{{and 0 .missing}}", "0"),
    ("or piped", "{{0 | or 1}} {{1 | or 0}}", "1 1"),
    ("and piped", "{{0 | and 1}} {{1 | and 1}}", "0 1"),
    ("or of no value", "{{or 0 (and nil 1)}}", "<no value>"),
    ("optional variable set", '{{or (index . "start-time") ""}}', "-5m"),
    ("optional variable unset", '[{{or (index . "end-time") ""}}]', "[]"),
    ("optional with default", '{{or (index . "pattern") ".*"}}', ".*"),
    ("not", '{{not 0}} {{not "x"}} {{not .}}', "true false false"),
    # -- len, index, slice: strings are bytes; index of a missing map key is "" -----------------
    ("len", '{{len .name}} {{len .}} {{len "héllo"}} {{len ""}}', "5 4 6 0"),
    ("index map", '{{index . "name"}}', "world"),
    ("index missing key is empty", '[{{index . "nope"}}]', "[]"),
    ("index of the map alone", "{{index .}}", MAP),
    ("index string is a byte", '{{index "abc" 1}} {{index .name 0}}', "98 119"),
    (
        "index byte type",
        '{{printf "%T %v %c" (index "a" 0) (index "a" 0) (index "a" 0)}}',
        "uint8 97 a",
    ),
    (
        "slice",
        '{{slice "abcdef" 1 3}} {{slice "abcdef" 2}} {{slice "abc"}} [{{slice "abc" 3}}]',
        "bc cdef abc []",
    ),
    ("slice cuts bytes", '{{slice "héllo" 1 3}}', "é"),
    # -- print, println: spaces between operands when neither is a string ------------------------
    ("print numbers", "{{print 1 2 3}}", "1 2 3"),
    ("print mixed", '{{print 1 2 "a" "b" 3}}', "1 2ab3"),
    ("print string then number", '{{print "a" 1}}', "a1"),
    ("print others", "{{print 1.5 true}} {{print nil}} [{{print}}]", "1.5 true <nil> []"),
    ("print byte", '{{print (index "a" 0) 1}}', "97 1"),
    ("print map", "{{print . 1}}", MAP + " 1"),
    ("println", '{{println "a" 1 2}}', "a 1 2\n"),
    ("println alone", "{{println}}", "\n"),
    # -- comparisons: basic kinds; int and uint compare by value ---------------------------------
    (
        "eq",
        '{{eq .n "3"}} {{eq 1 2}} {{eq 1.5 1.5}} {{eq true true}} {{eq 1i 1i}}',
        "true false true true true",
    ),
    ("eq any of several", "{{eq 1 2 3 1}} {{eq 1 2 3 4}}", "true false"),
    ("ne", "{{ne 1 2}} {{ne `a` `a`}}", "true false"),
    ("lt le gt ge", '{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', "true true true false"),
    ("strings compare bytewise", '{{lt "Z" "a"}} {{lt "a" "ab"}}', "true true"),
    (
        "uint and int",
        "{{eq (index `x` 0) 'x'}} {{lt -1 (index `a` 0)}} {{ge (index `a` 0) 97}}",
        "true true true",
    ),
    ("nil equals nil", "{{eq nil nil}} {{eq . nil}} {{eq nil 1}}", "true false false"),
    # -- html, js, urlquery: Go's escapers ---------------------------------------------------------
    (
        "html",
        '{{html "<a href=\\"x\\">O\'Neil & co</a>"}}',
        "&lt;a href=&#34;x&#34;&gt;O&#39;Neil &amp; co&lt;/a&gt;",
    ),
    ("html NUL", '{{html "a\\x00b"}}', "a\ufffdb"),
    ("html several args", '{{html "a" "b"}} {{html 1 2}}', "ab 1 2"),
    ("html nil", "{{html nil}}", "&lt;no value&gt;"),
    ("js", '{{js `it\'s "q" <b>=&\\`}}', 'it\\\'s \\"q\\" \\u003Cb\\u003E\\u003D\\u0026\\\\'),
    ("js control and separators", '{{js "\\x01\\u2028é"}}', "\\u0001\\u2028é"),
    ("urlquery", '{{urlquery "a b&c=d/é?~"}}', "a+b%26c%3Dd%2F%C3%A9%3F~"),
    ("urlquery piped", "{{.name | urlquery}}", "world"),
    # -- values print as fmt's %v -----------------------------------------------------------------
    ("no value", "{{and nil 1}}", "<no value>"),
    ("printf result", '{{printf "%05.1f" 3.14159}}', "003.1"),
]


@pytest.mark.parametrize(
    ("template", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_renders_as_go(template: str, expected: str) -> None:
    assert render_template(template, DATA) == expected


def test_empty_data_is_an_empty_map() -> None:
    # Bacalhau always passes a map (empty without -V/-E): false, ranges to else, prints map[].
    assert render_template("{{if .}}t{{else}}f{{end}}", {}) == "f"
    assert render_template("{{range .}}x{{else}}empty{{end}}", {}) == "empty"
    assert render_template("{{.}} {{len .}}", {}) == "map[] 0"


def test_map_keys_sort_bytewise() -> None:
    # fmt and range sort string keys by their bytes: uppercase before lowercase, then UTF-8.
    data = {"b": "1", "B": "2", "é": "3", "a": "4", "😀": "5"}
    assert render_template("{{range $k, $v := .}}{{$k}}{{end}}", data) == "Bab" + "é😀"
    assert render_template("{{.}}", data) == "map[B:2 a:4 b:1 é:3 😀:5]"


def test_text_without_actions_is_returned_as_is() -> None:
    text = "Name: x\nTasks: []\n"
    assert render_template(text, {}) is text
    assert not has_template_actions(text)
    assert has_template_actions("a {{/* only a comment */}}")
    assert has_template_actions("{{")


def test_variables_are_strings_as_given() -> None:
    # -V values are never interpreted: "1" stays a string, so eq with 1 is a kind mismatch
    # in Go, while eq with "1" holds.
    assert render_template('{{eq .v "1"}} {{len .v}}', {"v": "1"}) == "true 1"


# -- Bacalhau's own documentation (docs/cli/job/run.md; the docs site prints "{ {" there,
# a formatter's doing, for the "{{" written here and in docs/specifications/job/type.md) --

LIVE_LOGS = """\
Name: Live logs processing
Type: ops
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: expanso/nginx-access-log-processor:1.0.0
        Parameters:
          - --query
          - {{ .query }}
          - --start-time
          - {{ or (index . "start-time") "" }}
          - --end-time
          - {{ or (index . "end-time") "" }}
"""

S3_LOGS = """\
        Parameters:
          - --query
          - {{ .query }}
    InputSources:
      - Target: /logs
        Source:
          Type: s3
          Params:
            Bucket: {{ .AccessLogBucket }}
            Key: {{ .AccessLogPrefix }}
            Filter: {{ or (index . "AccessLogPattern") ".*" }}
            Region: {{ .AWSRegion }}
"""


def test_docs_live_logs_job_with_optional_variables() -> None:
    # `-V "query=SELECT ..." -V "start-time=-5m"`, as the docs run it: end-time is unset.
    query = "SELECT status FROM logs WHERE status LIKE '5__'"
    out = render_template(LIVE_LOGS, {"query": query, "start-time": "-5m"})
    assert f"          - {query}\n          - --start-time\n          - -5m\n" in out
    assert out.endswith("          - --end-time\n          - \n")


def test_docs_s3_logs_job_defaults_the_pattern() -> None:
    variables = {
        "query": "SELECT 1",
        "AccessLogBucket": "my-bucket",
        "AWSRegion": "us-east-1",
        "AccessLogPrefix": "2023-11-19-*",
    }
    out = render_template(S3_LOGS, variables)
    assert "Bucket: my-bucket\n" in out and "Region: us-east-1\n" in out
    assert "Filter: .*\n" in out
    variables["AccessLogPattern"] = "^[10-12].*"
    assert "Filter: ^[10-12].*\n" in render_template(S3_LOGS, variables)


def test_docs_greeting_job() -> None:
    text = "        Parameters:\n          - -c\n          - echo {{.greeting}} {{.name}}\n"
    out = render_template(text, {"greeting": "Hello", "name": "World"})
    assert out.endswith("- echo Hello World\n")
