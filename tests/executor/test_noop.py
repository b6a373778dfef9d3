"""The noop executor: a real plugin with the full results layout, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionCancelled, ExecutionTimeout, InvalidJobSpec
from bacalhau.executor import Executor, NoopExecutor
from bacalhau.models import RUN_OUTPUT_LIMIT, ResultPath, SpecConfig
from tests.executor.conftest import new_request


def test_noop_is_an_executor() -> None:
    executor = NoopExecutor()
    assert isinstance(executor, Executor)
    assert executor.name == "noop"


async def test_writes_the_full_results_layout(tmp_path: Path) -> None:
    executor = NoopExecutor()
    request = new_request(
        tmp_path,
        "noop",
        {
            "Stdout": "hello\n",
            "stderr": "careful\n",  # keys are case-insensitive
            "ExitCode": 4,
            "ResultFiles": {"outputs/a.txt": "A", "outputs/sub/b.txt": "B"},
        },
        result_paths=[ResultPath("outputs", "/outputs"), ResultPath("empty", "/empty")],
    )
    result = await executor.run(request)
    assert (result.stdout, result.stderr, result.exit_code, result.error_msg) == (
        "hello\n",
        "careful\n",
        4,
        "",
    )
    out = request.results_dir
    assert (out / "stdout").read_text() == "hello\n"
    assert (out / "stderr").read_text() == "careful\n"
    assert (out / "exitCode").read_bytes() == b"4"
    assert (out / "outputs" / "a.txt").read_text() == "A"
    assert (out / "outputs" / "sub" / "b.txt").read_text() == "B"
    assert (out / "empty").is_dir()


async def test_defaults_give_an_empty_successful_run(tmp_path: Path) -> None:
    request = new_request(tmp_path, "noop", {})
    result = await NoopExecutor().run(request)
    assert result.exit_code == 0
    assert result.error_msg == ""
    assert sorted(p.name for p in request.results_dir.iterdir()) == [
        "exitCode",
        "stderr",
        "stdout",
    ]


async def test_long_stdout_is_truncated_in_the_summary(tmp_path: Path) -> None:
    text = "x" * (RUN_OUTPUT_LIMIT + 100)
    request = new_request(tmp_path, "noop", {"Stdout": text})
    result = await NoopExecutor().run(request)
    assert result.stdout_truncated
    assert len(result.stdout) == RUN_OUTPUT_LIMIT
    assert (request.results_dir / "stdout").read_text() == text


async def test_error_message_fails_the_run(tmp_path: Path) -> None:
    request = new_request(tmp_path, "noop", {"ErrorMessage": "disk on fire"})
    result = await NoopExecutor().run(request)
    assert result.error_msg == "disk on fire"


async def test_cancel_stops_a_sleeping_run_promptly(tmp_path: Path) -> None:
    executor = NoopExecutor()
    request = new_request(tmp_path, "noop", {"SleepSeconds": 30, "Stdout": "started"})
    task = asyncio.create_task(executor.run(request))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await executor.cancel(request.execution_id)
    with pytest.raises(ExecutionCancelled):
        await task
    assert time.monotonic() - started < 5
    # What the job printed before it was stopped is kept.
    assert (request.results_dir / "stdout").read_text() == "started"
    # Cancelling again, or an unknown execution, is harmless.
    await executor.cancel(request.execution_id)
    await executor.cancel("e-unknown")


async def test_timeout_raises_execution_timeout(tmp_path: Path) -> None:
    request = new_request(tmp_path, "noop", {"SleepSeconds": 30}, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await NoopExecutor().run(request)
    assert time.monotonic() - started < 5


async def test_sleep_within_the_timeout_completes(tmp_path: Path) -> None:
    request = new_request(tmp_path, "noop", {"SleepSeconds": 0.05}, timeout=10)
    result = await NoopExecutor().run(request)
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ExitCode": "three"}, "Engine.Params.ExitCode"),
        ({"SleepSeconds": -1}, "Engine.Params.SleepSeconds"),
        ({"ResultFiles": {"outputs/../../x": "no"}}, "Engine.Params.ResultFiles"),
        ({"ResultFiles": {"outputs": "no path"}}, "Engine.Params.ResultFiles"),
        ({"ResultFiles": "not a map"}, "Engine.Params.ResultFiles"),
    ],
)
async def test_validate_rejects_bad_params(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await NoopExecutor().validate(SpecConfig("noop", params))
    assert info.value.field == field


async def test_result_file_must_name_a_result_path(tmp_path: Path) -> None:
    request = new_request(tmp_path, "noop", {"ResultFiles": {"elsewhere/x": "1"}})
    with pytest.raises(InvalidJobSpec):
        await NoopExecutor().run(request)


async def test_validate_rejects_another_engine_type() -> None:
    with pytest.raises(InvalidJobSpec):
        await NoopExecutor().validate(SpecConfig("docker", {"Image": "x"}))
