"""Job files as Bacalhau v1.6-v1.9 users write them: templates, strict top-level keys,
partition counts, env forwarding references and the v1.7 WASM shape."""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import normalise_job, parse_job_document, render_template, validate_job

V17_WASM = """
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: wasm
      Params:
        EntryModule: /app/main.wasm
        ImportModules: [/app/lib.wasm]
        Parameters: [a, b]
    InputSources:
      - Target: /app/main.wasm
        Source:
          Type: inline
          Params: {URL: "data:application/wasm;base64,AGFzbQEAAAA="}
      - Target: /app/lib.wasm
        Source: {Type: ipfs, Params: {CID: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG}}
"""


def _valid(text: str) -> None:
    job = parse_job_document(text)
    normalise_job(job)
    validate_job(job)


# -- templates -------------------------------------------------------------------------------


def test_template_substitutes_both_spacings_and_trims() -> None:
    text = "a: {{.x}}\nb: {{ .y }}\nc:  {{- .x -}}  \nd"
    assert render_template(text, {"x": "1", "y": "2"}) == "a: 1\nb: 2\nc:1d"


def test_template_missing_key_is_named() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        render_template("Name: {{.name}}\nImage: {{ .image }}", {"name": "n"})
    assert err.value.field == "template.image"
    assert 'no entry for key "image"' in err.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{if .x}}y{{end}}", "y"), ("{{.}}", "map[x:1]"), ("{{.x | printf `<%s>`}}", "<1>")],
)
def test_template_is_go_text_template(text: str, expected: str) -> None:
    # Conditions, dot and pipelines, which this renderer once refused (tests/models/
    # test_gotemplate.py holds the full table).
    assert render_template(text, {"x": "1"}) == expected


@pytest.mark.parametrize("action", ["{{.x | upper}}", "{{ .x "])
def test_template_refuses_what_go_refuses(action: str) -> None:
    # Go: function "upper" not defined (Bacalhau registers no functions); unclosed action.
    with pytest.raises(InvalidJobSpec) as err:
        render_template(action, {"x": "1"})
    assert err.value.field == "template"


def test_template_comment_is_dropped() -> None:
    assert render_template("{{/* note */}}ok", {}) == "ok"


# -- strict top-level keys -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ID", "State", "Revision", "Version", "CreateTime", "modifytime"])
def test_server_owned_fields_are_refused_naming_the_field(key: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document(f"Type: batch\n{key}: 1\nTasks: []\n")
    with pytest.raises(InvalidJobSpec):
        parse_job_document(f"Type: batch\n{key}: {{StateType: Running}}\nTasks: []\n")
    assert err.value.field == key
    assert "not allowed" in err.value.message


def test_a_dry_run_printout_with_empty_server_fields_passes() -> None:
    text = (
        "ID: ''\nType: batch\nState: {StateType: Undefined}\nVersion: 0\nRevision: 0\n"
        "CreateTime: 0\nModifyTime: 0\nTasks: []\n"
    )
    assert parse_job_document(text).type == "batch"


def test_unknown_top_level_key_is_refused_naming_it() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document("Type: batch\nTaks: []\n")
    assert err.value.field == "Taks"


def test_a_job_file_of_bacalhau_before_v1_says_so() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document("APIVersion: V1beta1\nSpec:\n  Engine: Docker\n")
    assert err.value.field == "APIVersion"
    assert "format of Bacalhau v1.3 and earlier (APIVersion: V1beta1)" in err.value.message
    assert "v1 job format" in (err.value.hint or "")


def test_wrapped_job_is_checked_too() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document("Job:\n  Type: batch\n  ID: j-1\n")
    assert err.value.field == "ID"


@pytest.mark.parametrize("job_type", ["batch", "service"])
def test_explicit_count_zero_is_refused(job_type: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document(f"Type: {job_type}\nCount: 0\nTasks: []\n")
    assert err.value.field == "Count"


@pytest.mark.parametrize("job_type", ["batch", "service"])
def test_an_omitted_count_is_one(job_type: str) -> None:
    # Bacalhau's docs write service jobs without Count (a "Kinesis Consumer" example).
    job = parse_job_document(
        f"Type: {job_type}\nTasks:\n  - Name: main\n    Engine: {{Type: noop}}\n"
    )
    normalise_job(job)
    validate_job(job)
    assert job.count == 1


def test_daemon_count_zero_is_fine() -> None:
    assert parse_job_document("Type: daemon\nCount: 0\nTasks: []\n").type == "daemon"


# -- env forwarding ------------------------------------------------------------------------


def _docker_with_env(env: str) -> str:
    return (
        "Type: batch\nTasks:\n  - Name: main\n    Engine: {Type: docker, Params: {Image: x}}\n"
        f"    Env: {env}\n"
    )


def test_env_reference_is_accepted() -> None:
    _valid(_docker_with_env('{A: "env:HOME", B: plain}'))


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ('{A: "env:no such"}', "Tasks[0].Env.A"),
        ('{A: "env:"}', "Tasks[0].Env.A"),
        ("{BACALHAU_JOB_ID: x}", "Tasks[0].Env.BACALHAU_JOB_ID"),
        ('{"1A": x}', "Tasks[0].Env.1A"),
    ],
)
def test_bad_env_is_refused_naming_the_field(env: str, field: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        _valid(_docker_with_env(env))
    assert err.value.field == field


# -- v1.7 WASM shape -----------------------------------------------------------------------


def test_v17_wasm_shape_is_valid() -> None:
    _valid(V17_WASM)


def test_v17_wasm_module_name_must_be_an_input() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        _valid(V17_WASM.replace("EntryModule: /app/main.wasm", "EntryModule: /app/other.wasm"))
    assert err.value.field == "Tasks[0].Engine.Params.EntryModule"
    with pytest.raises(InvalidJobSpec) as err:
        _valid(V17_WASM.replace("[/app/lib.wasm]", "[/nope.wasm]"))
    assert err.value.field == "Tasks[0].Engine.Params.ImportModules[0]"
