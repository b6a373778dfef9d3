"""Node settings given as ``-c key=value`` reach the executors the node builds: the WASM
memory cap and the stdout/stderr cap shared by the Docker and WASM executors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bacalhau.config import NodeConfig, load_config, split_config_options
from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.executor import DockerExecutor, Executor, WasmExecutor
from bacalhau.models import Resources
from bacalhau.node import build_executors
from tests.executor.test_docker import shell
from tests.executor.test_wasm import req


def _configured(tmp_path: Path, *pairs: str) -> NodeConfig:
    return load_config(
        {"data_dir": str(tmp_path / "node")},
        environ={},
        config_values=split_config_options(pairs).values,
    )


def _executors(cfg: NodeConfig, *engines: str) -> dict[str, Executor]:
    # The node's own mapping (node/_serve.py) passes these two settings through.
    return build_executors(
        engines,
        allow_image_pull=False,
        node_id=f"12D3KooW{uuid.uuid4().hex[:10]}",
        docker_scratch_dir=cfg.data_dir / "scratch",
        wasm_memory_limit=cfg.wasm_memory_limit,
        output_limit=cfg.executor_output_limit,
    )


def test_defaults_are_the_wasm32_ceiling_and_one_gib() -> None:
    cfg = NodeConfig()
    assert (cfg.wasm_memory_limit, cfg.executor_output_limit) == (1 << 32, 1 << 30)


async def test_wasm_memory_limit_caps_a_job_asking_for_more(
    tmp_path: Path, wasm_modules: Path
) -> None:
    cfg = _configured(tmp_path, "wasm_memory_limit=16777216")
    wasm = _executors(cfg, "wasm")["wasm"]
    assert isinstance(wasm, WasmExecutor)
    hog = (wasm_modules / "memhog.wasm").read_bytes()
    async with wasm:
        result = await wasm.run(req(tmp_path, hog, resources=Resources(memory=1 << 30)))
    assert result.error_msg.startswith("memory limit exceeded")
    assert f"of its {16 << 20}-byte limit" in result.error_msg


async def test_output_limit_caps_wasm_stdout(tmp_path: Path, wasm_modules: Path) -> None:
    cfg = _configured(tmp_path, "executor-output-limit=100")
    wasm = _executors(cfg, "wasm")["wasm"]
    request = req(
        tmp_path, (wasm_modules / "hello.wasm").read_bytes(), params={"Parameters": ["x" * 500]}
    )
    async with wasm:
        result = await wasm.run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").read_bytes() == b"hello from wasm\narg[1]=" + b"x" * 77


async def test_output_limit_caps_docker_stdout(tmp_path: Path, busybox_image: str) -> None:
    cfg = _configured(tmp_path, "executor_output_limit=100")
    docker_executor = _executors(cfg, "docker")["docker"]
    assert isinstance(docker_executor, DockerExecutor)
    request = shell(tmp_path, busybox_image, "head -c 5000 /dev/zero | tr '\\0' x")
    async with docker_executor:
        result = await docker_executor.run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").read_bytes() == b"x" * 100


def test_a_bad_limit_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration):
        _executors(_configured(tmp_path, "wasm_memory_limit=0"), "wasm")
    # A negative size is refused sooner, by the configuration, naming its key.
    with pytest.raises(InvalidRequest, match="must not be negative") as err:
        _configured(tmp_path, "executor_output_limit=-1")
    assert err.value.details["Field"] == "executor_output_limit"
