"""The noop executor: a real plugin that pretends to run a job, for tests across the system.

It does everything an executor does except running a workload: it writes the full results
layout, honours timeouts and cancellation, and can be told to fail. Tests of the compute
pipeline, the orchestrator and the API use it where a real engine would only add time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.errors import ExecutionCancelled, ExecutionFailed, ExecutionTimeout, InvalidJobSpec
from bacalhau.executor._base import RunRequest
from bacalhau.executor._results import (
    STDERR_FILE,
    STDOUT_FILE,
    finish_results,
    prepare_results_dir,
)
from bacalhau.executor.noop._params import NoopEngineSpec
from bacalhau.models import RunCommandResult, SpecConfig

__all__ = ["NoopExecutor"]


class NoopExecutor:
    """Runs ``noop`` engine specs (see :class:`NoopEngineSpec` for the params)."""

    def __init__(self) -> None:
        self._runs: dict[str, asyncio.Event] = {}

    @property
    def name(self) -> str:
        return "noop"

    async def is_installed(self) -> bool:
        return True

    async def validate(self, engine: SpecConfig) -> None:
        NoopEngineSpec.from_spec(engine)

    async def run(self, request: RunRequest) -> RunCommandResult:
        """Write stdout/stderr, sleep (cancellable), write result files, exit as told."""
        spec = NoopEngineSpec.from_spec(request.engine)
        known = {rp.name for rp in request.result_paths}
        for name, rel, _ in spec.result_files:
            if name not in known:
                raise InvalidJobSpec(
                    f"result file {name}/{rel} names no result path of the task",
                    field="Engine.Params.ResultFiles",
                )
        if request.execution_id in self._runs:
            raise ExecutionFailed(f"execution {request.execution_id} is already running here")
        cancelled = asyncio.Event()
        self._runs[request.execution_id] = cancelled
        try:
            folders = await asyncio.to_thread(_write_streams, request, spec)
            await _sleep(request, spec, cancelled)
            return await asyncio.to_thread(_finish, request, spec, folders)
        finally:
            del self._runs[request.execution_id]

    async def cancel(self, execution_id: str) -> None:
        event = self._runs.get(execution_id)
        if event is not None:
            event.set()


async def _sleep(request: RunRequest, spec: NoopEngineSpec, cancelled: asyncio.Event) -> None:
    timeout = request.timeout if request.timeout and request.timeout > 0 else None
    wait = spec.sleep_seconds
    if timeout is not None:
        wait = min(wait, timeout)
    if cancelled.is_set():
        raise ExecutionCancelled(f"execution {request.execution_id} was cancelled")
    if wait > 0:
        try:
            await asyncio.wait_for(cancelled.wait(), wait)
        except TimeoutError:
            pass
        else:
            raise ExecutionCancelled(f"execution {request.execution_id} was cancelled")
    if timeout is not None and spec.sleep_seconds > timeout:
        raise ExecutionTimeout(f"execution {request.execution_id} timed out after {timeout:g}s")


def _write_streams(request: RunRequest, spec: NoopEngineSpec) -> dict[str, Path]:
    folders = prepare_results_dir(request.results_dir, request.result_paths)
    (request.results_dir / STDOUT_FILE).write_text(spec.stdout, encoding="utf-8")
    (request.results_dir / STDERR_FILE).write_text(spec.stderr, encoding="utf-8")
    return folders


def _finish(
    request: RunRequest, spec: NoopEngineSpec, folders: dict[str, Path]
) -> RunCommandResult:
    for name, rel, content in spec.result_files:
        path = folders[name] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return finish_results(
        request.results_dir, exit_code=spec.exit_code, error_msg=spec.error_message
    )
