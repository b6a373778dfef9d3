"""A small but real executor for compute tests: runs ``sh -c <Command>`` as a subprocess.

Engine spec: ``{"Type": "shell", "Params": {"Command": "...", "ErrorMessage": "..."}}``. The
command runs in the results directory (so it writes result folders as ``<name>/file``) and
leaves the standard layout behind. ``ErrorMessage`` makes the run report a failure. Prepared
inputs are handed over as ``BACALHAU_INPUT_<i>`` (host path) and ``BACALHAU_TARGET_<i>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from bacalhau.errors import ExecutionTimeout, InvalidJobSpec
from bacalhau.executor import RunRequest
from bacalhau.executor._results import finish_results, prepare_results_dir
from bacalhau.models import RunCommandResult, SpecConfig, param


class ShellExecutor:
    def __init__(self, *, name: str = "shell", installed: bool = True) -> None:
        self._name = name
        self.installed = installed
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def name(self) -> str:
        return self._name

    def running(self) -> list[str]:
        return list(self._procs)

    async def is_installed(self) -> bool:
        return self.installed

    async def validate(self, engine: SpecConfig) -> None:
        if not isinstance(param(engine.params, "Command"), str):
            raise InvalidJobSpec("the shell engine needs a Command", field="Engine.Params.Command")

    async def run(self, request: RunRequest) -> RunCommandResult:
        command = param(request.engine.params, "Command")
        assert isinstance(command, str)
        prepare_results_dir(request.results_dir, request.result_paths)
        inputs: dict[str, str] = {}
        for i, mount in enumerate(request.inputs):
            inputs[f"BACALHAU_INPUT_{i}"] = str(mount.source)
            inputs[f"BACALHAU_TARGET_{i}"] = mount.target
        # The shell itself sends its streams to the layout's files, in the results dir.
        proc = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            f"exec >stdout 2>stderr\n{command}",
            cwd=request.results_dir,
            stdin=asyncio.subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **request.env, **inputs},
            start_new_session=True,
        )
        self.started.append(request.execution_id)
        self._procs[request.execution_id] = proc
        try:
            async with asyncio.timeout(request.timeout):
                code = await proc.wait()
        except TimeoutError:
            self._kill(proc)
            await proc.wait()
            raise ExecutionTimeout(f"execution timed out after {request.timeout}s") from None
        except asyncio.CancelledError:
            self._kill(proc)
            await proc.wait()
            raise
        finally:
            self._procs.pop(request.execution_id, None)
        error = param(request.engine.params, "ErrorMessage") or ""
        return finish_results(request.results_dir, exit_code=code, error_msg=str(error))

    async def cancel(self, execution_id: str) -> None:
        self.cancelled.append(execution_id)
        proc = self._procs.get(execution_id)
        if proc is not None:
            self._kill(proc)

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def results_file(root: Path, execution_id: str, name: str) -> Path:
    return root / execution_id / name
