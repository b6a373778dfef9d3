"""YAML and JSON that people write (job files, configuration files, ``-c`` values) is read
within bounds: absurd nesting, and aliases that expand a few lines into billions of values
or into a value that contains itself, are refused as unusable input, not a crash or a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau._yaml import MAX_YAML_VALUES, YamlTooLarge, load_yaml
from bacalhau.config import load_config, read_config_file
from bacalhau.errors import InvalidJobSpec, InvalidRequest
from bacalhau.models import parse_job_document

DEEP_YAML = "x: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_JSON = '{"Type": ' + "[" * 100_000 + "]" * 100_000 + "}"
#: Nine aliases of nine aliases, eight levels down: 9**8 (43 million) values from 9 lines.
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
SELF = "a: &a [*a]\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (DEEP_YAML, "nested too deeply"),
        (BOMB, f"more than {MAX_YAML_VALUES} values"),
        (SELF, f"more than {MAX_YAML_VALUES} values"),
    ],
)
def test_load_yaml_refuses_as_a_yaml_error(text: str, why: str) -> None:
    with pytest.raises(YamlTooLarge, match=why):
        load_yaml(text)


def test_aliases_within_bounds_are_read_as_yaml_reads_them() -> None:
    text = "base: &env [A=1, B=2]\nTasks: [{Env: *env}, {Env: *env}]\n"
    assert load_yaml(text) == {"base": ["A=1", "B=2"], "Tasks": [{"Env": ["A=1", "B=2"]}] * 2}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (DEEP_YAML, "nested too deeply"),
        (DEEP_JSON, "nested too deeply"),
        (BOMB, "expands to more than"),
        (SELF, "expands to more than"),
    ],
)
def test_a_job_file_out_of_bounds_is_an_invalid_spec(text: str, why: str) -> None:
    with pytest.raises(InvalidJobSpec, match=why):
        parse_job_document(text)


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("deep.yaml", DEEP_YAML, "nested too deeply"),
        ("bomb.yaml", BOMB, "expands to more than"),
        ("self.yaml", SELF, "expands to more than"),
        ("deep.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ],
)
def test_a_config_file_out_of_bounds_is_refused(
    tmp_path: Path, name: str, text: str, why: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidRequest, match=why):
        read_config_file(path)


def test_a_config_value_out_of_bounds_is_refused() -> None:
    # API.Auth.Users arrives through -c or the environment as YAML text.
    with pytest.raises(InvalidRequest, match="expands to more than"):
        load_config({}, config_values={"API.Auth.Users": SELF})
