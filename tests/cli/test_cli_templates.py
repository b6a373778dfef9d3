"""``bacalhau job run FILE`` renders FILE as a template: -V, -E, --no-template (dry runs, so
nothing is submitted), and a missing variable named before anything is sent."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from bacalhau.cli import cli

SPEC = """
Type: batch
Name: "{{.name}}"
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: "{{ .image }}"
        Entrypoint: [echo, "{{- .word -}}"]
"""


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(cli, ["job", "run", str(spec), "--dry-run", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_variables_from_flags_fill_the_file(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "-V", "name=greeter", "-V", "image=busybox,word=hi")
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["Name"] == "greeter"
    assert job["Tasks"][0]["Engine"]["Params"] == {"Image": "busybox", "Entrypoint": ["echo", "hi"]}


def test_variables_from_the_environment_by_regex_and_flags_win(tmp_path: Path) -> None:
    env = {"name": "from-env", "image": "img", "word": "w", "OTHER": "x"}
    code, out, err = _run(tmp_path, "-E", "name|image|word", "-V", "name=flag", env=env)
    assert code == 0, err
    assert yaml.safe_load(out)["Name"] == "flag"


def test_variables_are_read_as_bacalhaus_cli_reads_them(tmp_path: Path) -> None:
    # pflag's StringToString: one `=` is one pair, commas and all; more are CSV pairs.
    code, out, err = _run(tmp_path, "-V", "name=a,b", "-V", 'image=i,"word=x,y"')
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["Name"] == "a,b"
    assert job["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == ["echo", "x,y"]
    # -E finds its pattern anywhere in a name (Go's MatchString); `*` means every variable.
    env = {"MY_name": "n", "name": "from-env", "image": "img", "word": "w"}
    code, out, err = _run(tmp_path, "-E", "ame", "-V", "image=i,word=w", env=env)
    assert code == 0 and yaml.safe_load(out)["Name"] == "from-env", err
    code, out, err = _run(tmp_path, "-E", "*", env=env)
    assert code == 0 and yaml.safe_load(out)["Name"] == "from-env", err
    code, out, err = _run(tmp_path, "-V", "name", "-E", "image|word", env=env)
    assert code == 2 and "'name' is not key=value" in err


def test_a_missing_variable_is_named_and_nothing_is_printed(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "-V", "name=n", "-V", "image=i")
    assert code != 0
    assert 'no entry for key "word"' in err
    assert out == ""


def test_no_template_keeps_the_braces(tmp_path: Path) -> None:
    # (Not in the image: braces there are no image reference, refused at validation.)
    spec = SPEC.replace('"{{ .image }}"', "busybox")
    code, out, err = _run_text(tmp_path, spec, "--no-template")
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["Name"] == "{{.name}}"
    assert job["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == ["echo", "{{- .word -}}"]
    # Braces left in the image are refused as an image reference, naming the field.
    code, out, err = _run(tmp_path, "--no-template")
    assert code == 1 and "invalid image reference '{{ .image }}'" in err


def _run_text(
    tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    spec = tmp_path / "job.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(cli, ["job", "run", str(spec), "--dry-run", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


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


def test_bacalhau_docs_job_with_optional_variables(tmp_path: Path) -> None:
    # docs/cli/job/run.md, "Query Live Logs": optional variables through index and or.
    query = "SELECT status FROM logs WHERE status LIKE '5__'"
    code, out, err = _run_text(
        tmp_path, LIVE_LOGS, "-V", f"query={query}", "-V", "start-time=-5m", "-V", "end-time=0m"
    )
    assert code == 0, err
    params = yaml.safe_load(out)["Tasks"][0]["Engine"]["Params"]["Parameters"]
    assert params == ["--query", query, "--start-time", "-5m", "--end-time", "0m"]


def test_conditions_and_defaults_from_flags_and_environment(tmp_path: Path) -> None:
    text = """\
Type: batch
Name: {{ with index . "suffix" }}logs-{{ . }}{{ else }}logs{{ end }}
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: {{ or (index . "IMAGE") "busybox" }}
        Entrypoint: [{{ range $k, $v := . }}"{{ $k }}={{ $v }}", {{ end }}"end"]
"""
    code, out, err = _run_text(tmp_path, text)
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["Name"] == "logs"
    assert job["Tasks"][0]["Engine"]["Params"]["Image"] == "busybox"
    assert job["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == ["end"]
    code, out, err = _run_text(
        tmp_path, text, "-V", "suffix=x", "-E", "IMAGE", env={"IMAGE": "img"}
    )
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["Name"] == "logs-x"
    assert job["Tasks"][0]["Engine"]["Params"]["Image"] == "img"
    # range over the variables, sorted by name: IMAGE before suffix.
    assert job["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == ["IMAGE=img", "suffix=x", "end"]


def test_a_template_error_names_line_and_action_and_submits_nothing(tmp_path: Path) -> None:
    code, out, err = _run_text(tmp_path, "Type: batch\nName: {{ .name | upper }}\n")
    assert code != 0
    assert out == ""
    assert 'template: line 2: function "upper" not defined, in {{ .name | upper }}' in err
    assert "--no-template" in err
