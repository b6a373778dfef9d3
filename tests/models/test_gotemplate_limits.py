"""Hostile templates fail fast with a clear InvalidJobSpec: bounded nesting (never a
RecursionError), bounded output and work, and nothing but InvalidJobSpec for any input.

Go bounds template calls only (at 100000) and relies on a large stack for the rest; the
bounds here are ours (see bacalhau/models/_gotemplate/_exec.py and _parse.py).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import render_template
from bacalhau.models._gotemplate import _exec

DATA = {"name": "world", "n": "3", "empty": "", "start-time": "-5m"}
DEEP = 99  # just inside the nesting bound of 100


def _error(template: str) -> InvalidJobSpec:
    with pytest.raises(InvalidJobSpec) as err:
        render_template(template, DATA)
    assert err.value.field == "template"
    return err.value


@contextmanager
def _stack_headroom(frames: int) -> Iterator[None]:
    # Leave only `frames` Python frames above this one, so a walk deeper than the bounds
    # promise would raise RecursionError (turned into the catch-all message, checked below).
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


WORST_CASES = {
    "parentheses": ("{{" + "(print " * DEEP + "1" + ")" * DEEP + "}}", "1"),
    "ifs": ("{{if 1}}" * DEEP + "x" + "{{end}}" * DEEP, "x"),
    "ranges": ("{{range 1}}" * DEEP + "x" + "{{end}}" * DEEP, "x"),
    "else ifs": ("{{if 0}}" + "{{else if 0}}" * DEEP + "{{else}}x{{end}}", "x"),
    "withs around parentheses": (
        "{{with 1}}" * 49 + "{{" + "(" * 49 + "1" + ")" * 49 + "}}" + "{{end}}" * 49,
        "1",
    ),
    "blocks": ("".join(f'{{{{block "b{i}" 1}}}}' for i in range(DEEP)) + "{{end}}" * DEEP, ""),
    "define body": ('{{define "d"}}' + "{{if 1}}" * 98 + "{{end}}" * 98 + "{{end}}x", "x"),
}


@pytest.mark.parametrize(("template", "expected"), WORST_CASES.values(), ids=list(WORST_CASES))
def test_deepest_templates_render_within_a_small_stack(template: str, expected: str) -> None:
    # 450 frames: well under Python's default limit of 1000 with any ordinary caller.
    with _stack_headroom(450):
        assert render_template(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{" + "(" * 150 + "1" + ")" * 150 + "}}", "parenthesized pipeline nested more than 100"),
        ("{{if 1}}" * 150 + "{{end}}" * 150, "if nested more than 100 deep"),
        ("{{range 1}}" * 5000, "range nested more than 100 deep"),
        ("{{if 0}}" + "{{else if 0}}" * 150 + "{{end}}", "else if nested more than 100 deep"),
        (
            "".join(f'{{{{block "b{i}" 1}}}}' for i in range(150)) + "{{end}}" * 150,
            "block nested more than 100 deep",
        ),
        (
            '{{define "a"}}{{template "a"}}{{end}}{{template "a"}}',
            "exceeded maximum template depth (100 nested templates",
        ),
        (
            '{{define "a"}}{{if 1}}{{template "a" .}}{{end}}{{end}}{{template "a" .}}',
            "exceeded maximum template depth",
        ),
    ],
    ids=["parentheses", "ifs", "ranges", "else ifs", "blocks", "recursion", "recursion in if"],
)
def test_nesting_beyond_the_bound_is_refused(template: str, message: str) -> None:
    with _stack_headroom(450):
        e = _error(template)
    assert message in e.message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{range 1000000000}}{{end}}", "execution takes more than"),
        # Exponential recursion inside the depth bound: two calls per level, 30 levels.
        (
            '{{define "a"}}{{if .}}{{template "a" (slice . 1)}}{{template "a" (slice . 1)}}'
            '{{end}}{{end}}{{template "a" "' + "x" * 30 + '"}}',
            "execution takes more than",
        ),
        ('{{range 100}}{{printf "%1000000d" 1}}{{end}}', "output is larger than 16777216"),
        ('{{range 100}}{{len (printf "%1000000d" 1)}}{{end}}', "functions built more than"),
    ],
    ids=["range", "exponential recursion", "output", "built strings"],
)
def test_runaway_work_and_output_are_refused_quickly(template: str, message: str) -> None:
    start = time.monotonic()
    e = _error(template)
    assert message in e.message
    assert "simplify the template" in e.hint
    assert time.monotonic() - start < 10


def test_the_work_bound_grows_with_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long template walked once is no runaway: the bound is MAX_STEPS plus one step per
    # character. Shown with a small MAX_STEPS: 600 actions take 1200 steps, over the base
    # but within the base plus the text's 3600 characters.
    monkeypatch.setattr(_exec, "MAX_STEPS", 1000)
    assert render_template("{{.n}}" * 600, DATA) == "3" * 600
    runaway = "{{range 2000}}{{end}}"
    assert f"execution takes more than {1000 + len(runaway)} steps" in _error(runaway).message


# -- fuzzing: any text renders or fails with InvalidJobSpec -----------------------------------

_TOKENS = [
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{/*",
    "*/}}",
    "{{end}}",
    "{{else}}",
    ".",
    ".name",
    ".n",
    ".empty",
    ".nope",
    ".name.x",
    "$",
    "$x",
    "$x := ",
    "$k, $v := ",
    "$x = ",
    "=",
    ":=",
    ",",
    "|",
    "(",
    ")",
    " ",
    "\n",
    "\t",
    '"',
    "`",
    "'",
    "\\",
    "a",
    "1",
    "-1",
    "0x1F",
    "1.5",
    "1e3",
    "1i",
    "1+2i",
    "'a'",
    '"s"',
    '"%d %s %v %q %x %5.2f %[2]*d %!"',
    "`r`",
    "nil",
    "true",
    "false",
    "if ",
    "else if ",
    "range ",
    "with ",
    "else with ",
    'define "t"',
    'template "t"',
    'block "b" ',
    "break",
    "continue",
    "and ",
    "or ",
    "not ",
    "len ",
    "index ",
    "slice ",
    "print ",
    "printf ",
    "println ",
    "eq ",
    "ne ",
    "lt ",
    "le ",
    "gt ",
    "ge ",
    "html ",
    "js ",
    "urlquery ",
    "call ",
    "-",
    "#",
    "é",
    "\u2028",
    "\x00",
    "\udcff",
    "5",
    "1000",
    "08",
    "_",
]

templates = st.lists(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=3)), max_size=40).map(
    "".join
)


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(templates)
def test_any_text_renders_or_fails_with_invalid_job_spec(template: str) -> None:
    start = time.monotonic()
    try:
        assert isinstance(render_template(template, DATA), str)
    except InvalidJobSpec as e:
        assert e.field == "template" or e.field.startswith("template.")
        assert e.message.startswith("template:")
        assert e.hint
    assert time.monotonic() - start < 5


def _random_pipeline(rng: random.Random, depth: int) -> str:
    atoms = [
        ".name",
        ".n",
        ".empty",
        "$",
        ".",
        "1",
        "0",
        '"s"',
        "true",
        "nil",
        "1.5",
        "$x",
        '(index . "n")',
        '(slice "abc" 1)',
    ]
    funcs = [
        "and",
        "or",
        "not",
        "len",
        "index",
        "slice",
        "print",
        "printf",
        "eq",
        "lt",
        "html",
        "js",
        "urlquery",
    ]
    if depth > 2 or rng.random() < 0.4:
        return rng.choice(atoms)
    args = " ".join(_random_pipeline(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    cmd = f"{rng.choice(funcs)} {args}".strip()
    if rng.random() < 0.3:
        cmd = f"{_random_pipeline(rng, depth + 1)} | {cmd}"
    return f"({cmd})" if depth else cmd


def _random_template(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        pipe = _random_pipeline(rng, 0)
        if depth < 4 and kind < 0.15:
            parts.append(
                f"{{{{if {pipe}}}}}{_random_template(rng, depth + 1)}{{{{else}}}}"
                f"{_random_template(rng, depth + 1)}{{{{end}}}}"
            )
        elif depth < 4 and kind < 0.3:
            parts.append(
                f"{{{{range $k, $v := {rng.choice(['.', '2', pipe])}}}}}"
                f"{_random_template(rng, depth + 1)}{{{{end}}}}"
            )
        elif depth < 4 and kind < 0.4:
            parts.append(f"{{{{with {pipe}}}}}{_random_template(rng, depth + 1)}{{{{end}}}}")
        elif kind < 0.5:
            parts.append(f"{{{{$x := {pipe}}}}}")
        elif kind < 0.55:
            parts.append('{{template "t" .}}')
        else:
            parts.append(f"text{{{{ {pipe} }}}}")
    return "".join(parts)


def test_random_well_formed_templates_render_or_fail_cleanly() -> None:
    rng = random.Random(20261201)
    rendered = failed = 0
    for _ in range(400):
        template = '{{define "t"}}[{{.}}]{{end}}{{$x := 1}}' + _random_template(rng)
        try:
            render_template(template, DATA)
            rendered += 1
        except InvalidJobSpec as e:
            assert e.message.startswith("template: line ")
            failed += 1
    # Both outcomes occur, so the generator reaches the executor, not just the parser.
    assert rendered > 50 and failed > 50
