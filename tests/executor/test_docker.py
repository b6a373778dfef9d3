"""The Docker executor against the real engine and the local busybox image."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import pytest

from bacalhau.errors import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorUnavailable,
    ImageNotFound,
    InvalidJobSpec,
)
from bacalhau.executor import DockerExecutor, Executor, InputMount, RunRequest
from bacalhau.executor.docker import LABEL_EXECUTION_ID, LABEL_EXECUTOR, LABEL_JOB_ID
from bacalhau.models import (
    RUN_OUTPUT_LIMIT,
    NetworkConfig,
    NetworkType,
    Resources,
    ResultPath,
    SpecConfig,
)
from tests.executor.conftest import new_request


@pytest.fixture
def client(busybox_image: str) -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def prefix() -> str:
    # Unique per test: remove_leftovers() of one test must never touch another's containers.
    return f"bt{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def executor(
    client: docker.DockerClient, prefix: str, tmp_path: Path
) -> AsyncIterator[DockerExecutor]:
    executor = DockerExecutor(client=client, name_prefix=prefix, scratch_dir=tmp_path / "scratch")
    yield executor
    # Closing waits for what the runs left to finish in the background (their containers'
    # removals, the release of their capped result folders).
    await executor.close()
    leftovers = _containers(client, prefix)
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    assert not leftovers, "the executor left containers behind"


def _containers(client: docker.DockerClient, prefix: str, **labels: str) -> list[Any]:
    filters = [f"{LABEL_EXECUTOR}={prefix}", *(f"{k}={v}" for k, v in labels.items())]
    return list(client.containers.list(all=True, ignore_removed=True, filters={"label": filters}))


def shell(tmp_path: Path, image: str, script: str, **kwargs: Any) -> RunRequest:
    params = {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": [script]}
    params.update(kwargs.pop("params", {}))
    return new_request(tmp_path, "docker", params, **kwargs)


def test_docker_is_an_executor(executor: DockerExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.name == "docker"


async def test_is_installed(executor: DockerExecutor) -> None:
    assert await executor.is_installed()


async def test_unreachable_engine_is_not_installed(tmp_path: Path) -> None:
    """An engine that does not answer is no offer of Docker, and a run then fails as one
    that may be tried again (the engine may be restarting), in words, not Python objects."""
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")
    executor = DockerExecutor(client=client, name_prefix="unreachable")
    assert not await executor.is_installed()
    with pytest.raises(ExecutorUnavailable) as caught:
        await executor.run(new_request(tmp_path, "docker", {"Image": "local/busybox:1.37"}))
    assert caught.value.retryable
    assert "the Docker engine is not reachable: No such file or directory" in str(caught.value)
    assert "('Connection aborted.'" not in str(caught.value)


async def test_streams_exit_code_and_files(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo out; echo err >&2")
    result = await executor.run(request)
    assert (result.stdout, result.stderr, result.exit_code, result.error_msg) == (
        "out\n",
        "err\n",
        0,
        "",
    )
    assert (request.results_dir / "stdout").read_text() == "out\n"
    assert (request.results_dir / "stderr").read_text() == "err\n"
    assert (request.results_dir / "exitCode").read_bytes() == b"0"


async def test_non_zero_exit_is_a_normal_completion(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo partial; exit 3")
    result = await executor.run(request)
    assert (result.exit_code, result.error_msg, result.stdout) == (3, "", "partial\n")
    assert (request.results_dir / "exitCode").read_bytes() == b"3"


async def test_env_entrypoint_workdir_and_parameters(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = new_request(
        tmp_path,
        "docker",
        {
            "image": busybox_image,  # param keys are case-insensitive
            "ENTRYPOINT": ["sh", "-c", 'echo "$FOO $BAR $BAZ"; pwd; echo "$0 $1"'],
            "parameters": ["first", "second"],
            "EnvironmentVariables": ["FOO=engine", "BAZ=a=b"],
            "WorkingDirectory": "/tmp",
        },
        env={"FOO": "task", "BAR": "task-only"},
    )
    result = await executor.run(request)
    assert result.stdout == "engine task-only a=b\n/tmp\nfirst second\n"


async def test_parameters_alone_replace_the_image_command(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = new_request(
        tmp_path, "docker", {"Image": busybox_image, "Parameters": ["echo", "hi", "there"]}
    )
    assert (await executor.run(request)).stdout == "hi there\n"


async def test_result_path_folder_holds_what_the_job_wrote(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "mkdir -p /outputs/sub && echo data > /outputs/sub/file.txt && echo log > /var/log/job/x",
        result_paths=[ResultPath("outputs", "/outputs"), ResultPath("logs", "/var/log/job")],
    )
    result = await executor.run(request)
    assert result.exit_code == 0, result.stderr
    outputs = request.results_dir / "outputs"
    assert (outputs / "sub" / "file.txt").read_text() == "data\n"
    assert (request.results_dir / "logs" / "x").read_text() == "log\n"
    assert stat.S_IMODE(outputs.stat().st_mode) == 0o755


async def test_inputs_are_mounted_read_only(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    data = tmp_path / "input-data"
    data.mkdir()
    (data / "in.txt").write_text("input!\n")
    request = shell(
        tmp_path,
        busybox_image,
        "cat /inputs/in.txt; touch /inputs/new 2>/dev/null && echo writable || echo read-only",
        inputs=[InputMount(source=data, target="/inputs")],
    )
    result = await executor.run(request)
    assert result.stdout == "input!\nread-only\n"
    assert not (data / "new").exists()


async def test_large_interleaved_output_is_demultiplexed_in_full(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "for i in $(seq 1 2000); do echo out$i; echo err$i >&2; done;"
        " yes 0123456789 | head -c 3000000",
    )
    result = await executor.run(request)
    out = (request.results_dir / "stdout").read_text()
    err = (request.results_dir / "stderr").read_text()
    out_lines = out.splitlines()
    assert out_lines[:2000] == [f"out{i}" for i in range(1, 2001)]
    assert err.splitlines() == [f"err{i}" for i in range(1, 2001)]
    tail_size = len(out.encode()) - len("".join(f"out{i}\n" for i in range(1, 2001)))
    assert tail_size == 3_000_000
    assert len(result.stdout.encode()) == RUN_OUTPUT_LIMIT
    assert result.stdout_truncated
    assert result.stderr_truncated


async def test_short_output_is_not_truncated(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, f"head -c {RUN_OUTPUT_LIMIT} /dev/zero | tr '\\0' a")
    result = await executor.run(request)
    assert result.stdout == "a" * RUN_OUTPUT_LIMIT
    assert not result.stdout_truncated


async def test_missing_image_fails_fast_without_pulling(
    tmp_path: Path, executor: DockerExecutor
) -> None:
    image = f"local/not-here-{uuid.uuid4().hex[:8]}:1.0"
    request = new_request(tmp_path, "docker", {"Image": image})
    started = time.monotonic()
    with pytest.raises(ImageNotFound) as info:
        await executor.run(request)
    assert time.monotonic() - started < 5
    assert info.value.message == (
        f"image {image} is not present on this node and pulling is disabled"
    )
    assert "allow_image_pull" in info.value.hint
    with pytest.raises(ImageNotFound):
        await executor.validate(request.engine)


async def test_validate_accepts_a_present_image(
    executor: DockerExecutor, busybox_image: str
) -> None:
    await executor.validate(SpecConfig("docker", {"Image": busybox_image}))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "Engine.Params.Image"),
        ({"Image": "x", "Entrypoint": "sh"}, "Engine.Params.Entrypoint"),
        ({"Image": "x", "Parameters": [1]}, "Engine.Params.Parameters"),
        (
            {"Image": "x", "EnvironmentVariables": ["NOEQUALS"]},
            "Engine.Params.EnvironmentVariables[0]",
        ),
        ({"Image": "x", "WorkingDirectory": "relative"}, "Engine.Params.WorkingDirectory"),
    ],
)
async def test_bad_params_are_invalid_job_spec(
    executor: DockerExecutor, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await executor.validate(SpecConfig("docker", params))
    assert info.value.field == field


async def test_malformed_image_reference_is_invalid_job_spec(
    tmp_path: Path, executor: DockerExecutor
) -> None:
    request = new_request(tmp_path, "docker", {"Image": "Not A/Valid:Reference"})
    with pytest.raises(InvalidJobSpec):
        await executor.validate(request.engine)
    with pytest.raises(InvalidJobSpec):
        await executor.run(request)


async def test_executable_not_found_is_a_clear_failure(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = new_request(
        tmp_path, "docker", {"Image": busybox_image, "Entrypoint": ["no-such-program"]}
    )
    with pytest.raises(ExecutionFailed) as info:
        await executor.run(request)
    assert "executable file not found" in info.value.message
    assert info.value.hint


async def test_memory_limit_kills_and_fails_the_run(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "cat /sys/fs/cgroup/memory.max 2>/dev/null"
        " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
        " dd if=/dev/zero of=/dev/null bs=100M count=1",
        resources=Resources(memory=32 * 1024 * 1024),
    )
    result = await executor.run(request)
    assert result.stdout.splitlines()[0] == str(32 * 1024 * 1024)
    assert result.exit_code != 0
    assert result.error_msg.startswith("memory limit exceeded")


async def test_cpu_limit_is_applied(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null"
        " || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
        " $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)",
        resources=Resources(cpu=0.5),
    )
    result = await executor.run(request)
    quota, period = (int(x) for x in result.stdout.split())
    assert quota / period == pytest.approx(0.5)


async def test_network_none_has_only_loopback(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    result = await executor.run(shell(tmp_path, busybox_image, "ls /sys/class/net"))
    assert result.stdout.split() == ["lo"]


@pytest.mark.parametrize("kind", [NetworkType.FULL, NetworkType.HOST])
async def test_network_full_and_host_use_the_host_network(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, kind: NetworkType
) -> None:
    request = shell(tmp_path, busybox_image, "ls /sys/class/net", network=NetworkConfig(kind))
    before = set(os.listdir("/sys/class/net"))
    result = await executor.run(request)
    after = set(os.listdir("/sys/class/net"))
    # The host's interfaces. Other tests' containers, networks and namespaces add and remove
    # some meanwhile: every one there throughout is seen, and nothing the host never had.
    seen = set(result.stdout.split())
    assert before & after <= seen <= before | after, (seen, before, after)
    assert "lo" in seen and len(seen) > 1


async def test_network_bridge_gives_the_container_an_interface_of_its_own(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    script = "ls /sys/class/net; cat /proc/net/route | tail -n +2 | cut -f2 | grep -c 00000000"
    request = shell(tmp_path, busybox_image, script, network=NetworkConfig(NetworkType.BRIDGE))
    result = await executor.run(request)
    *links, default_routes = result.stdout.split()
    assert sorted(links) == ["eth0", "lo"], result.stderr
    assert default_routes == "1"  # a route out


async def test_network_default_is_no_network(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(
        tmp_path, busybox_image, "ls /sys/class/net", network=NetworkConfig(NetworkType.DEFAULT)
    )
    result = await executor.run(request)
    assert result.stdout.split() == ["lo"]


async def test_timeout_kills_the_container(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo before; sleep 60", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await executor.run(request)
    assert time.monotonic() - started < 15
    assert (request.results_dir / "stdout").read_text() == "before\n"
    assert _containers(client, prefix) == []


async def test_a_finished_run_leaves_its_container_to_the_executor_to_remove(
    tmp_path: Path, busybox_image: str, client: Any, prefix: str
) -> None:
    # Once the container has exited its output is in the results: the run returns without
    # waiting for the engine to delete the container (its removal goes on in a task of the
    # executor's own), and closing the executor waits for every such removal.
    executor = DockerExecutor(client=client, name_prefix=prefix, scratch_dir=tmp_path / "s")
    requests = [shell(tmp_path / str(n), busybox_image, f"echo run {n}") for n in range(3)]
    results = await asyncio.gather(*(executor.run(r) for r in requests))
    assert [r.stdout for r in results] == [f"run {n}\n" for n in range(3)]
    await executor.close()
    assert _containers(client, prefix) == []


async def test_cancel_while_running_removes_the_container(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo running; sleep 60")
    task = asyncio.create_task(executor.run(request))
    await _wait_for_output(request.results_dir / "stdout", "running")
    running = _containers(client, prefix, **{LABEL_EXECUTION_ID: request.execution_id})
    assert len(running) == 1
    assert running[0].labels[LABEL_JOB_ID] == request.job_id
    assert running[0].name == f"{prefix}-{request.job_id}-{request.execution_id}"
    started = time.monotonic()
    await executor.cancel(request.execution_id)
    with pytest.raises(ExecutionCancelled):
        await task
    assert time.monotonic() - started < 10
    assert _containers(client, prefix) == []
    await executor.cancel(request.execution_id)  # idempotent


async def test_cancelling_the_run_task_removes_the_container(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo running; sleep 60")
    task = asyncio.create_task(executor.run(request))
    await _wait_for_output(request.results_dir / "stdout", "running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_until(lambda: _containers(client, prefix) == [])


async def test_cancel_removes_a_container_this_process_does_not_track(
    executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    execution_id = f"e-{uuid.uuid4()}"
    client.containers.create(
        busybox_image,
        ["sleep", "60"],
        labels={LABEL_EXECUTOR: prefix, LABEL_EXECUTION_ID: execution_id},
    )
    await executor.cancel(execution_id)
    assert _containers(client, prefix) == []


async def test_remove_leftovers_removes_only_this_prefix(
    executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    other_prefix = f"{prefix}x"
    ours = client.containers.create(busybox_image, ["true"], labels={LABEL_EXECUTOR: prefix})
    theirs = client.containers.create(
        busybox_image, ["true"], labels={LABEL_EXECUTOR: other_prefix}
    )
    try:
        assert await executor.remove_leftovers() == 1
        assert _containers(client, prefix) == []
        assert [c.id for c in _containers(client, other_prefix)] == [theirs.id]
        assert ours.id not in {c.id for c in client.containers.list(all=True, ignore_removed=True)}
    finally:
        theirs.remove(force=True)


async def test_leftover_of_the_same_execution_does_not_block_a_rerun(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = shell(tmp_path, busybox_image, "echo second try")
    client.containers.create(
        busybox_image,
        ["true"],
        name=f"{prefix}-{request.job_id}-{request.execution_id}",
        labels={LABEL_EXECUTOR: prefix},
    )
    result = await executor.run(request)
    assert result.stdout == "second try\n"


async def test_runs_in_parallel(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    requests = [shell(tmp_path, busybox_image, f"sleep 1; echo {i}") for i in range(4)]
    started = time.monotonic()
    results = await asyncio.gather(*(executor.run(r) for r in requests))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    # Sequentially this takes over 4 s.
    assert time.monotonic() - started < 4


def _has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def _wait_for_output(path: Path, text: str) -> None:
    await _wait_until(lambda: _has(path, text))


async def _wait_until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
