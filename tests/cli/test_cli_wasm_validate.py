"""``bacalhau wasm validate FILE [--entry-point NAME]`` (Bacalhau v1.0-v1.6): OK for a module
that can run alone, a clear error (exit 1) naming what is wrong otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner

from bacalhau.cli import cli

#: A module exporting (func $_start) and (func $add (param i32 i32) (result i32)), importing
#: env.log besides WASI when asked to.
_WAT = """
(module
  {imports}
  (func (export "_start"))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (memory (export "memory") 1))
"""


def module(tmp_path: Path, *, foreign: bool = False) -> Path:
    imports = '(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))'
    if foreign:
        imports += ' (import "env" "log" (func (param i32)))'
    path = tmp_path / "m.wasm"
    path.write_bytes(wasmtime.wat2wasm(_WAT.format(imports=imports)))
    return path


def validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["wasm", "validate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_runnable_module_is_ok(tmp_path: Path) -> None:
    assert validate(str(module(tmp_path))) == (0, "OK\n")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--entry-point", "main"], "unable to find the entrypoint 'main'"),
        (["--entry-point", "add"], "must be a function that takes no parameters"),
        (["--entry-point", "memory"], "must be a function that takes no parameters"),
    ],
)
def test_an_entry_point_it_cannot_call_is_an_error(
    tmp_path: Path, args: list[str], problem: str
) -> None:
    code, output = validate(str(module(tmp_path)), *args)
    assert code == 1 and problem in output and "Hint: " in output


def test_imports_beyond_wasi_and_garbage_are_errors(tmp_path: Path) -> None:
    code, output = validate(str(module(tmp_path, foreign=True)))
    assert code == 1 and "imports from 'env', not only from WASI" in output
    garbage = tmp_path / "g.wasm"
    garbage.write_bytes(b"not a module")
    code, output = validate(str(garbage))
    assert code == 1 and "magic number" in output
    code, output = validate(str(tmp_path / "missing.wasm"))
    assert code == 2
