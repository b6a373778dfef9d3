"""WASM import modules (``ImportModules``), memory limits and exit codes, on real modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime

from bacalhau.errors import InvalidJobSpec
from bacalhau.executor import InputMount, WasmExecutor
from bacalhau.models import Resources, SpecConfig
from tests.executor.conftest import new_request
from tests.executor.test_wasm import data_url, req, wasm_params

# Exports add(a, b); imports nothing.
LIB_WAT = """
(module
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
"""
# Exports twice_plus(a, b) = 2a + b through lib.add: an import module with imports of its own.
MIDDLE_WAT = """
(module
  (import "lib" "add" (func $add (param i32 i32) (result i32)))
  (func (export "twice_plus") (param i32 i32) (result i32)
    (call $add (call $add (local.get 0) (local.get 0)) (local.get 1))))
"""
# Exits with middle.twice_plus(20, 2) = 42 through WASI's proc_exit.
MAIN_WAT = """
(module
  (import "middle" "twice_plus" (func $f (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (call $f (i32.const 20) (i32.const 2)))))
"""
# An import module that itself calls WASI: exits with the code it is given.
QUIT_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "quit") (param i32) (call $exit (local.get 0))))
"""
CALLS_QUIT_WAT = """
(module
  (import "quitter" "quit" (func $quit (param i32)))
  (func (export "_start") (call $quit (i32.const 7))))
"""
LOOP_A_WAT = '(module (import "b" "f" (func)) (func (export "f")))'
LOOP_B_WAT = '(module (import "a" "f" (func)) (func (export "f")))'


def inline(wat: str, alias: str) -> dict[str, Any]:
    return {
        "Source": {"Type": "inline", "Params": {"URL": data_url(wasmtime.wat2wasm(wat))}},
        "Alias": alias,
        "Target": f"/modules/{alias}.wasm",
    }


@pytest.fixture
def executor() -> WasmExecutor:
    return WasmExecutor(module_cache_size=8)


async def test_imports_resolve_to_import_modules_by_alias_dependencies_first(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    # Listed before its own dependency: order in the spec does not matter.
    imports = [inline(MIDDLE_WAT, "middle"), inline(LIB_WAT, "lib")]
    request = req(tmp_path, wasmtime.wat2wasm(MAIN_WAT), params={"ImportModules": imports})
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (42, "")


async def test_import_modules_link_wasi_too(tmp_path: Path, executor: WasmExecutor) -> None:
    request = req(
        tmp_path,
        wasmtime.wat2wasm(CALLS_QUIT_WAT),
        params={"ImportModules": [inline(QUIT_WAT, "quitter")], "Deterministic": True},
    )
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (7, "")


async def test_name_form_resolves_an_inputs_alias_before_a_path(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    # As the submit's validation allows: a module named by its input's Alias.
    (tmp_path / "main.wasm").write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))
    (tmp_path / "quit.wasm").write_bytes(wasmtime.wat2wasm(QUIT_WAT))
    params = {"EntryModule": "main.wasm", "ImportModules": ["quitter"]}
    request = new_request(
        tmp_path,
        "wasm",
        params,
        inputs=[
            InputMount(tmp_path / "main.wasm", "/app/main.wasm", alias="main.wasm"),
            InputMount(tmp_path / "quit.wasm", "/app/lib/quit.wasm", alias="quitter"),
        ],
    )
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (7, "")


async def test_name_form_resolves_to_prepared_inputs_by_target(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    # v1.7+: EntryModule and ImportModules name the targets of the task's inputs.
    (tmp_path / "main.wasm").write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))
    (tmp_path / "quit.wasm").write_bytes(wasmtime.wat2wasm(QUIT_WAT))
    params = {"EntryModule": "/app/main.wasm", "ImportModules": ["quitter"]}
    request = new_request(
        tmp_path,
        "wasm",
        params,
        inputs=[
            InputMount(tmp_path / "main.wasm", "/app/main.wasm"),
            InputMount(tmp_path / "quit.wasm", "quitter"),
        ],
    )
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (7, "")


async def test_an_import_resolves_to_the_task_input_with_that_alias(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    # As in Bacalhau: no ImportModules entry, but an input whose Alias is the imported name.
    (tmp_path / "quit.wasm").write_bytes(wasmtime.wat2wasm(QUIT_WAT))
    data = tmp_path / "data"
    data.mkdir()
    request = req(
        tmp_path,
        wasmtime.wat2wasm(CALLS_QUIT_WAT),
        inputs=[
            InputMount(tmp_path / "quit.wasm", "/inputs/quit.wasm", alias="quitter"),
            InputMount(data, "/data", alias="other"),  # data stays data: preopened
        ],
    )
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg) == (7, "")


async def test_an_import_nobody_provides_is_named(tmp_path: Path, executor: WasmExecutor) -> None:
    params = wasm_params(
        data_url(wasmtime.wat2wasm(MAIN_WAT)), ImportModules=[inline(LIB_WAT, "lib")]
    )
    with pytest.raises(InvalidJobSpec) as info:
        await executor.validate(SpecConfig("wasm", params))
    assert "could not find WASM module with name 'middle'" in info.value.message
    assert info.value.field == "Engine.Params.ImportModules"


async def test_modules_importing_each_other_are_refused(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    main = '(module (import "a" "f" (func)) (func (export "_start")))'
    imports = [inline(LOOP_A_WAT, "a"), inline(LOOP_B_WAT, "b")]
    with pytest.raises(InvalidJobSpec, match="import each other"):
        await executor.run(
            req(tmp_path, wasmtime.wat2wasm(main), params={"ImportModules": imports})
        )


async def test_two_import_modules_with_one_name_are_refused(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    imports = [inline(LIB_WAT, "lib"), inline(QUIT_WAT, "lib")]
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(
            req(tmp_path, wasmtime.wat2wasm(MAIN_WAT), params={"ImportModules": imports})
        )
    assert info.value.field == "Engine.Params.ImportModules[1]"


async def test_memory_exhaustion_fails_with_memory_limit_exceeded(
    tmp_path: Path, executor: WasmExecutor, wasm_modules: Path
) -> None:
    hog = (wasm_modules / "memhog.wasm").read_bytes()
    result = await executor.run(req(tmp_path, hog, resources=Resources(memory=32 << 20)))
    assert result.error_msg.startswith("memory limit exceeded")
    assert f"of its {32 << 20}-byte limit" in result.error_msg
    assert "out of memory after" in result.stderr  # what the module said is kept


async def test_operator_cap_bounds_a_job_asking_for_more(
    tmp_path: Path, wasm_modules: Path
) -> None:
    hog = (wasm_modules / "memhog.wasm").read_bytes()
    async with WasmExecutor(max_memory=16 << 20) as capped:
        for asked in (0, 1 << 30):
            result = await capped.run(req(tmp_path, hog, resources=Resources(memory=asked)))
            assert f"of its {16 << 20}-byte limit" in result.error_msg


async def test_a_module_handling_a_refused_grow_is_not_reported_out_of_memory(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    # exitcode.wasm exits with its argument; far below its limit, it is a plain exit code.
    result = await executor.run(
        req(
            tmp_path,
            module("exitcode"),
            params={"Parameters": ["5"]},
            resources=Resources(memory=64 << 20),
        )
    )
    assert (result.exit_code, result.error_msg) == (5, "")
