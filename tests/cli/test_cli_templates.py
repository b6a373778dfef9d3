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


def test_a_missing_variable_is_named_and_nothing_is_printed(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "-V", "name=n", "-V", "image=i")
    assert code != 0
    assert 'no entry for key "word"' in err
    assert out == ""


def test_no_template_keeps_the_braces(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--no-template")
    assert code == 0, err
    assert yaml.safe_load(out)["Name"] == "{{.name}}"
