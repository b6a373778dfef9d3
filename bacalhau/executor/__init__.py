"""Executor plugins: docker, wasm and noop, behind one small Protocol.

Each plugin leaves the same results layout (``stdout``, ``stderr``, ``exitCode`` and one folder
per result path); the helpers that write and read it are exported here for the compute
pipeline and for new plugins. Plugins are registered by name in ``node/``. The Docker
executor loads the Docker SDK: it is imported when first named (see ``executor.docker``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bacalhau._lazy import lazy_attributes
from bacalhau.executor._base import Executor, InputMount, RunRequest
from bacalhau.executor._gpus import (
    GPU,
    GpuVendor,
    detect_gpus,
    docker_gpu_options,
    gpu_labels,
    host_gpus,
)
from bacalhau.executor._results import (
    EXIT_CODE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    finish_results,
    prepare_results_dir,
    read_run_output,
    summarise_output,
    write_exit_code,
)
from bacalhau.executor.noop import NoopExecutor
from bacalhau.executor.wasm import WasmExecutor

if TYPE_CHECKING:
    from bacalhau.executor.docker import DockerExecutor

__all__ = [
    "EXIT_CODE_FILE",
    "GPU",
    "STDERR_FILE",
    "STDOUT_FILE",
    "DockerExecutor",
    "Executor",
    "GpuVendor",
    "InputMount",
    "NoopExecutor",
    "RunRequest",
    "WasmExecutor",
    "detect_gpus",
    "docker_gpu_options",
    "finish_results",
    "gpu_labels",
    "host_gpus",
    "prepare_results_dir",
    "read_run_output",
    "summarise_output",
    "write_exit_code",
]


__getattr__ = lazy_attributes(__name__, {"DockerExecutor": "bacalhau.executor.docker._executor"})
