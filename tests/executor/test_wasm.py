"""The WASM executor against real WASI modules (compiled from scripts/wasm/) and small WAT ones."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from bacalhau.errors import (
    EntryPointNotFound,
    ExecutionCancelled,
    ExecutionTimeout,
    InvalidJobSpec,
)
from bacalhau.executor import Executor, InputMount, RunRequest, WasmExecutor
from bacalhau.executor.wasm._check import check_entry_module
from bacalhau.models import RUN_OUTPUT_LIMIT, Resources, ResultPath, SpecConfig
from tests.executor.conftest import new_request
from tests.storage.opens import count_opens

TRAP_WAT = '(module (func (export "_start") unreachable))'
NO_START_WAT = '(module (func (export "run")) (func (export "add") (param i32 i32) (result i32)'
NO_START_WAT += " local.get 0 local.get 1 i32.add))"
# Grows its memory by 100 pages (6.4 MB) and exits 3 if the grow is refused, 0 otherwise.
GROW_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1))
      (then (call $exit (i32.const 3))))
    (call $exit (i32.const 0))))
"""
ENV_IMPORT_WAT = '(module (import "env" "host_fn" (func)) (func (export "_start")))'


def data_url(wasm: bytes | bytearray) -> str:
    return "data:application/wasm;base64," + base64.b64encode(wasm).decode()


def tar_gz_url(files: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return (
        "data:application/gzip;base64," + base64.b64encode(gzip.compress(buf.getvalue())).decode()
    )


def wasm_params(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}, "Target": "/app"},
        **extra,
    }


@pytest.fixture
def executor() -> WasmExecutor:
    return WasmExecutor(module_cache_size=8)


def req(tmp_path: Path, wasm: bytes | bytearray, **kwargs: Any) -> RunRequest:
    params = kwargs.pop("params", {})
    return new_request(tmp_path, "wasm", wasm_params(data_url(wasm), **params), **kwargs)


def test_wasm_is_an_executor(executor: WasmExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.name == "wasm"


async def test_hello_prints_arguments_and_env(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(
        tmp_path,
        module("hello"),
        params={"Parameters": ["one", "two words"], "EnvironmentVariables": {"GREETING": "hola"}},
        env={"GREETING": "overridden by the engine's value", "OTHER": "1"},
    )
    result = await executor.run(request)
    assert result.exit_code == 0
    assert result.error_msg == ""
    expected = "hello from wasm\narg[1]=one\narg[2]=two words\nGREETING=hola\n"
    assert result.stdout == expected
    assert result.stderr == "hello on stderr\n"
    out = request.results_dir
    assert (out / "stdout").read_text() == expected
    assert (out / "stderr").read_text() == "hello on stderr\n"
    assert (out / "exitCode").read_bytes() == b"0"


async def test_task_env_reaches_the_module(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("hello"), env={"GREETING": "from the task"})
    result = await executor.run(request)
    assert "GREETING=from the task\n" in result.stdout


async def test_result_path_is_preopened_writable_at_path_and_name(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    outputs = [ResultPath("outputs", "/outputs")]
    by_path = req(
        tmp_path,
        module("wordcount"),
        params={"Parameters": ["/outputs", "one two three", "four"]},
        result_paths=outputs,
    )
    result = await executor.run(by_path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "4 words\n"
    report = (by_path.results_dir / "outputs" / "counts.txt").read_text()
    assert report == "3 one two three\n1 four\ntotal 4\n"
    # Bacalhau mounts outputs at their Name: a module written for it works too.
    by_name = req(
        tmp_path,
        module("wordcount"),
        params={"Parameters": ["outputs", "a b"]},
        result_paths=outputs,
    )
    result = await executor.run(by_name)
    assert result.exit_code == 0, result.stderr
    assert (by_name.results_dir / "outputs" / "counts.txt").read_text() == "2 a b\ntotal 2\n"


async def test_nothing_outside_the_result_paths_is_writable(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("wordcount"), params={"Parameters": ["/tmp", "x"]})
    result = await executor.run(request)
    assert result.exit_code == 3  # fopen failed: /tmp is not visible to the module
    assert "counts.txt" in result.stderr


@pytest.mark.parametrize("code", [0, 1, 7, 200])
async def test_proc_exit_code_is_the_exit_code(
    tmp_path: Path, executor: WasmExecutor, module: Any, code: int
) -> None:
    request = req(tmp_path, module("exitcode"), params={"Parameters": [str(code)]})
    result = await executor.run(request)
    # A non-zero exit is a normal completion, not a failure.
    assert (result.exit_code, result.error_msg) == (code, "")
    assert (request.results_dir / "exitCode").read_bytes() == str(code).encode()


async def test_trap_fails_with_exit_code_1_and_the_trap_message(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    request = req(tmp_path, wasmtime.wat2wasm(TRAP_WAT))
    result = await executor.run(request)
    assert result.exit_code == 1
    assert "unreachable" in result.error_msg
    assert (request.results_dir / "exitCode").read_bytes() == b"1"


async def test_missing_entry_point_is_entry_point_not_found(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("hello"), params={"EntryPoint": "main_missing"})
    with pytest.raises(EntryPointNotFound) as info:
        await executor.run(request)
    assert info.value.message == "unable to find the entrypoint 'main_missing' in the WASM module"
    with pytest.raises(EntryPointNotFound):
        await executor.validate(request.engine)


async def test_custom_entry_point_runs_and_returns_exit_code_0(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    wasm = wasmtime.wat2wasm(NO_START_WAT)
    result = await executor.run(req(tmp_path, wasm, params={"EntryPoint": "run"}))
    assert (result.exit_code, result.error_msg) == (0, "")
    with pytest.raises(EntryPointNotFound):
        await executor.run(req(tmp_path, wasm))  # default _start is not exported
    with pytest.raises(InvalidJobSpec):
        await executor.run(req(tmp_path, wasm, params={"EntryPoint": "add"}))  # takes params
    # One that returns a result is refused too, as `wasm validate` and Bacalhau refuse it.
    answers = wasmtime.wat2wasm(
        '(module (func (export "_start")) (func (export "g") (result i32) i32.const 42))'
    )
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(req(tmp_path, answers, params={"EntryPoint": "g"}))
    assert "returns 1 results; it must take none and return nothing" in info.value.message
    with pytest.raises(InvalidJobSpec):
        check_entry_module(answers, "g")


async def test_the_text_format_is_refused_as_bacalhau_refuses_it(
    tmp_path: Path, executor: WasmExecutor
) -> None:
    text = b'(module (memory (export "memory") 1) (func (export "_start")))'
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(req(tmp_path, text))
    assert "not a WebAssembly binary: it is WebAssembly text (.wat)" in info.value.message
    assert "wat2wasm" in info.value.hint
    with pytest.raises(InvalidJobSpec):
        check_entry_module(text)
    # The same module compiled is fine.
    result = await executor.run(req(tmp_path, wasmtime.wat2wasm(text.decode())))
    assert (result.exit_code, result.error_msg) == (0, "")


async def test_invalid_module_is_invalid_job_spec(tmp_path: Path, executor: WasmExecutor) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(req(tmp_path, b"\0asm\x01\0\0\0 not really"))
    assert "not a valid WebAssembly module" in info.value.message
    with pytest.raises(InvalidJobSpec):
        await executor.validate(SpecConfig("wasm", wasm_params(data_url(b"hello"))))


async def test_unknown_import_is_invalid_job_spec(tmp_path: Path, executor: WasmExecutor) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(req(tmp_path, wasmtime.wat2wasm(ENV_IMPORT_WAT)))
    assert "host_fn" in info.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "Engine.Params.EntryModule"),
        (
            {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "http://x"}}}},
            "Engine.Params.EntryModule.Source.Params.URL",
        ),
        (
            {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:;base64,%%"}}}},
            "Engine.Params.EntryModule.Source.Params.URL",
        ),
        (
            {"EntryModule": {"Source": {"Type": "ipfs", "Params": {"CID": "Qm"}}}},
            "Engine.Params.EntryModule.Source.Type",
        ),
        (wasm_params("data:,x", Parameters="not a list"), "Engine.Params.Parameters"),
        (
            wasm_params("data:,x", ImportModules=[{"Source": {}}]),
            "Engine.Params.ImportModules[0].Source.Type",
        ),
    ],
)
async def test_bad_params_are_invalid_job_spec(
    tmp_path: Path, executor: WasmExecutor, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await executor.run(new_request(tmp_path, "wasm", params))
    assert info.value.field == field


async def test_gzipped_tar_inline_module(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    url = tar_gz_url({"README": b"not code", "prog/hello.wasm": module("hello")})
    result = await executor.run(new_request(tmp_path, "wasm", wasm_params(url)))
    assert result.stdout.startswith("hello from wasm\n")
    two = tar_gz_url({"a.wasm": module("hello"), "b.wasm": module("exitcode")})
    with pytest.raises(InvalidJobSpec, match="exactly one"):
        await executor.run(new_request(tmp_path, "wasm", wasm_params(two)))


async def test_stdout_beyond_2048_bytes_is_truncated_in_the_summary_only(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    long_arg = "y" * 5000
    request = req(tmp_path, module("hello"), params={"Parameters": [long_arg]})
    result = await executor.run(request)
    assert result.stdout_truncated
    assert len(result.stdout.encode()) == RUN_OUTPUT_LIMIT
    assert long_arg in (request.results_dir / "stdout").read_text()


async def test_the_summary_is_taken_from_the_copied_output_without_reading_it_again(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("hello"), params={"Parameters": ["x" * 3000]})
    with count_opens(request.results_dir) as opens:
        result = await executor.run(request)
    # Each file of the layout is opened once: to be written.
    assert dict(opens) == {"stdout": 1, "stderr": 1, "exitCode": 1}
    stdout = (request.results_dir / "stdout").read_bytes()
    assert result.stdout.encode() == stdout[:RUN_OUTPUT_LIMIT] and result.stdout_truncated
    assert result.stderr == "hello on stderr\n" and not result.stderr_truncated


async def test_memory_limit_refuses_growth(tmp_path: Path, executor: WasmExecutor) -> None:
    wasm = wasmtime.wat2wasm(GROW_WAT)
    free = await executor.run(req(tmp_path, wasm))
    assert free.exit_code == 0
    limited = await executor.run(req(tmp_path, wasm, resources=Resources(memory=1 << 20)))
    assert limited.exit_code == 3


async def test_memory_limit_below_initial_memory_fails_the_run(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    result = await executor.run(req(tmp_path, module("hello"), resources=Resources(memory=1024)))
    assert result.exit_code == 1
    assert "instantiate" in result.error_msg


async def test_timeout_stops_a_busy_loop(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await executor.run(req(tmp_path, module("busyloop"), timeout=0.3))
    assert time.monotonic() - started < 5


async def test_cancel_stops_only_the_cancelled_run(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    first = req(tmp_path, module("busyloop"))
    second = req(tmp_path, module("busyloop"))
    first_task = asyncio.create_task(executor.run(first))
    second_task = asyncio.create_task(executor.run(second))
    await _wait_for_file_content(first.results_dir / "stdout", "spinning")
    await _wait_for_file_content(second.results_dir / "stdout", "spinning")
    started = time.monotonic()
    await executor.cancel(first.execution_id)
    with pytest.raises(ExecutionCancelled):
        await first_task
    assert time.monotonic() - started < 5
    # The other run on the same engine is still going.
    await asyncio.sleep(0.1)
    assert not second_task.done()
    await executor.cancel(second.execution_id)
    with pytest.raises(ExecutionCancelled):
        await second_task
    await executor.cancel(second.execution_id)  # idempotent
    await executor.cancel("e-unknown")


async def test_cancelling_the_run_task_stops_the_module(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("busyloop"))
    task = asyncio.create_task(executor.run(request))
    await _wait_for_file_content(request.results_dir / "stdout", "spinning")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A fresh run after it works normally: the worker was released.
    result = await executor.run(req(tmp_path, module("exitcode"), params={"Parameters": ["5"]}))
    assert result.exit_code == 5


async def test_compiled_module_is_reused(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    wasm = module("exitcode")
    before = executor.cache_stats()
    await executor.run(req(tmp_path, wasm))
    after_first = executor.cache_stats()
    assert after_first.misses == before.misses + 1
    for _ in range(3):
        await executor.run(req(tmp_path, wasm))
    after = executor.cache_stats()
    assert after.misses == after_first.misses
    assert after.hits == after_first.hits + 3


async def test_cache_evicts_the_least_recently_used_module(tmp_path: Path, module: Any) -> None:
    executor = WasmExecutor(module_cache_size=1)
    await executor.run(req(tmp_path, module("exitcode")))
    await executor.run(req(tmp_path, module("hello")))
    await executor.run(req(tmp_path, module("exitcode")))
    stats = executor.cache_stats()
    assert (stats.misses, stats.hits, stats.size) == (3, 0, 1)


async def test_validate_compiles_into_the_cache(executor: WasmExecutor, module: Any) -> None:
    engine = SpecConfig("wasm", wasm_params(data_url(module("hello"))))
    await executor.validate(engine)
    await executor.validate(engine)
    stats = executor.cache_stats()
    assert (stats.misses, stats.hits) == (1, 1)


async def test_a_module_sent_in_another_encoding_is_not_compiled_again(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    # Inline modules are found by their URL first, then by the bytes it decodes to.
    wasm = module("exitcode")
    base64_url = data_url(wasm)
    gzip_url = "data:application/gzip;base64," + base64.b64encode(gzip.compress(wasm)).decode()
    for url in (base64_url, gzip_url, base64_url, gzip_url):
        request = new_request(tmp_path, "wasm", wasm_params(url, Parameters=["3"]))
        assert (await executor.run(request)).exit_code == 3
    stats = executor.cache_stats()
    assert (stats.misses, stats.hits, stats.size) == (1, 3, 1)


def _contains(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def _wait_for_file_content(path: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _contains(path, text):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never contained {text!r}")


async def test_inputs_are_preopened_read_only(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    data = tmp_path / "input-data"
    data.mkdir()
    (data / "in.txt").write_text("input text\n")
    request = req(
        tmp_path,
        module("cat"),
        params={"Parameters": ["/inputs/in.txt"]},
        inputs=[InputMount(source=data, target="/inputs")],
    )
    result = await executor.run(request)
    assert (result.exit_code, result.stdout) == (0, "input text\n")
    # Read-only: the module cannot write into it.
    writer = req(
        tmp_path,
        module("wordcount"),
        params={"Parameters": ["/inputs", "x"]},
        inputs=[InputMount(source=data, target="/inputs")],
    )
    assert (await executor.run(writer)).exit_code == 3
    assert not (data / "counts.txt").exists()


async def test_entry_module_prepared_as_an_input(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    prepared = tmp_path / "fetched"
    prepared.mkdir()
    (prepared / "program.wasm").write_bytes(module("exitcode"))
    params = {
        "EntryModule": {"Source": {"Type": "ipfs", "Params": {"CID": "Qm..."}}, "Target": "/app"},
        "Parameters": ["9"],
    }
    request = new_request(
        tmp_path, "wasm", params, inputs=[InputMount(source=prepared, target="/app")]
    )
    result = await executor.run(request)
    assert result.exit_code == 9


async def test_timeout_does_not_wait_for_a_module_blocked_in_a_host_call(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("sleeper"), params={"Parameters": ["60"]}, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await executor.run(request)
    assert time.monotonic() - started < 10


async def test_cancel_does_not_wait_for_a_module_blocked_in_a_host_call(
    tmp_path: Path, executor: WasmExecutor, module: Any
) -> None:
    request = req(tmp_path, module("sleeper"), params={"Parameters": ["60"]})
    task = asyncio.create_task(executor.run(request))
    await _wait_for_file_content(request.results_dir / "stdout", "sleeping 60")
    started = time.monotonic()
    await executor.cancel(request.execution_id)
    with pytest.raises(ExecutionCancelled):
        await task
    assert time.monotonic() - started < 10


async def test_a_short_sleep_completes(tmp_path: Path, executor: WasmExecutor, module: Any) -> None:
    request = req(tmp_path, module("sleeper"), params={"Parameters": ["1"]}, timeout=30)
    result = await executor.run(request)
    assert (result.exit_code, result.stdout) == (0, "sleeping 1\nwoke up\n")
