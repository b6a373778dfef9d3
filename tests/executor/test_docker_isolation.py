"""What a Docker job can and cannot do to the node: privileges, filesystem, disk and output caps,
and what is left once a run is cancelled or times out. Real engine, local busybox image."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from bacalhau.errors import ExecutionCancelled, ExecutionTimeout
from bacalhau.executor import DockerExecutor, InputMount, RunRequest
from bacalhau.executor._disk import CappedFolders, capped_folders_supported
from bacalhau.executor.docker import LABEL_EXECUTOR
from bacalhau.executor.docker._layer_watch import MAX_INTERVAL, next_wait
from bacalhau.models import Resources, ResultPath
from tests.executor.conftest import REPO, mounts_under, needs_root, new_request

MiB = 1024 * 1024


def test_capped_folders_are_supported_where_the_node_runs_as_root() -> None:
    if os.geteuid() == 0:
        assert capped_folders_supported(), "root, but no mkfs.ext4: install e2fsprogs"


@pytest.fixture
def client(busybox_image: str) -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def prefix() -> str:
    return f"bi{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


ExecutorFactory = Callable[..., DockerExecutor]


@pytest.fixture
async def make_executor(
    client: docker.DockerClient, prefix: str, scratch: Path
) -> AsyncIterator[ExecutorFactory]:
    made: list[DockerExecutor] = []

    def make(**kwargs: Any) -> DockerExecutor:
        executor = DockerExecutor(client=client, name_prefix=prefix, scratch_dir=scratch, **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.close()
    leftovers = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
    )
    for container in leftovers:
        container.remove(force=True)
    assert not leftovers, "the executor left containers behind"
    assert not mounts_under(scratch), "a capped filesystem is still mounted"


def shell(tmp_path: Path, image: str, script: str, **kwargs: Any) -> RunRequest:
    params = {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": [script]}
    return new_request(tmp_path, "docker", params, **kwargs)


def _status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _capabilities(mask: str) -> set[int]:
    bits = int(mask, 16)
    return {n for n in range(64) if bits >> n & 1}


CAP_CHOWN, CAP_SETUID, CAP_NET_RAW, CAP_MKNOD = 0, 7, 13, 27


async def test_no_capabilities_and_no_new_privileges(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "cat /proc/self/status")
    await make_executor().run(request)
    # The file is longer than the run summary: read it whole from the results.
    status = _status_fields((request.results_dir / "stdout").read_text())
    assert status["CapEff"] == "0000000000000000"
    assert status["CapPrm"] == "0000000000000000"
    assert status["CapBnd"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"


async def test_an_operator_may_keep_dockers_capabilities_less_raw_sockets_and_devices(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "cat /proc/self/status")
    await make_executor(cap_drop=("cap_net_raw", "MKNOD")).run(request)
    status = _status_fields((request.results_dir / "stdout").read_text())
    caps = _capabilities(status["CapEff"])
    assert {CAP_CHOWN, CAP_SETUID} <= caps, "package managers and entrypoints need these"
    assert not caps & {CAP_NET_RAW, CAP_MKNOD}
    assert _capabilities(status["CapBnd"]) == caps
    assert status["NoNewPrivs"] == "1"


def test_unknown_capabilities_are_refused_when_the_executor_is_made(
    client: docker.DockerClient, prefix: str
) -> None:
    with pytest.raises(ValueError, match="unknown capabilities: NET_RWA"):
        DockerExecutor(client=client, name_prefix=prefix, cap_drop=("CAP_NET_RWA",))


async def test_an_operator_may_let_images_write_to_their_root_as_docker_run_does(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    """What real images do at start: keep state beside the app, chown it to a service user,
    and write more to /tmp than a small tmpfs would hold."""
    request = shell(
        tmp_path,
        busybox_image,
        "mkdir -p /app/state && echo 1 > /app/state/n && chown nobody /app/state && echo root=yes;"
        " dd if=/dev/zero of=/tmp/big bs=1M count=80 2>/dev/null && echo tmp=yes;"
        " su nobody -s /bin/sh -c 'touch /app/state/mine' && echo user=yes",
    )
    writable = make_executor(read_only_rootfs=False, cap_drop=("NET_RAW", "MKNOD"))
    result = await writable.run(request)
    assert result.error_msg == ""
    assert result.stdout.split() == ["root=yes", "tmp=yes", "user=yes"]


async def test_root_is_read_only_and_the_job_writes_to_tmp_and_its_results(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "data.txt").write_text("input")
    request = shell(
        tmp_path,
        busybox_image,
        "touch /rootfile 2>/dev/null && echo root=yes || echo root=no;"
        " echo t > /tmp/t && echo tmp=yes;"
        " touch /inputs/new 2>/dev/null && echo inputs=yes || echo inputs=no;"
        " echo out > /outputs/out.txt && echo outputs=yes;"
        " dd if=/dev/zero of=/tmp/big bs=1M count=16 2>/dev/null || echo tmp-full",
        result_paths=[ResultPath(name="out", path="/outputs")],
        inputs=[InputMount(source=inputs, target="/inputs")],
    )
    result = await make_executor(tmp_size=4 * MiB).run(request)
    assert result.stdout.split() == ["root=no", "tmp=yes", "inputs=no", "outputs=yes", "tmp-full"]
    assert (request.results_dir / "out" / "out.txt").read_text() == "out\n"


async def test_a_job_filling_its_writable_layer_is_stopped_and_fails_saying_why(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/filler bs=1M count=40 2>/dev/null; echo written; sleep 60",
    )
    started = time.monotonic()
    writable = make_executor(
        read_only_rootfs=False, writable_layer_limit=16 * MiB, layer_poll_interval=0.2
    )
    result = await writable.run(request)
    assert time.monotonic() - started < 30, "the job was not stopped at its cap"
    assert result.stdout == "written\n"
    assert result.error_msg.startswith("disk limit exceeded: the job wrote 41.9MB")
    assert "past the cap of 16.8MB" in result.error_msg


async def test_the_jobs_disk_caps_its_writable_layer_below_the_operators(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/filler bs=1M count=12 2>/dev/null; sleep 60",
        resources=Resources(disk=8_000_000),
    )
    result = await make_executor(read_only_rootfs=False, layer_poll_interval=0.2).run(request)
    assert "past the cap of 8MB" in result.error_msg


async def test_a_job_within_its_writable_layer_cap_is_left_alone(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/filler bs=1M count=4 2>/dev/null; sleep 1; echo done",
    )
    writable = make_executor(
        read_only_rootfs=False, writable_layer_limit=16 * MiB, layer_poll_interval=0.2
    )
    result = await writable.run(request)
    assert (result.exit_code, result.stdout, result.error_msg) == (0, "done\n", "")


@needs_root
async def test_disk_filler_is_stopped_at_the_cap_and_fails_the_run(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str, scratch: Path
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/outputs/fill bs=1M count=200; echo dd=$?",
        result_paths=[ResultPath(name="out", path="/outputs")],
        resources=Resources(disk=8 * MiB),
    )
    result = await make_executor(result_disk_limit=64 * MiB).run(request)
    assert "dd=1" in result.stdout
    assert "No space left on device" in result.stderr
    assert result.error_msg.startswith("disk limit exceeded")
    assert "8.39MB" in result.error_msg  # the job's own cap, smaller than the operator's
    assert list((request.results_dir / "out").iterdir()) == []
    await _scratch_emptied(scratch)


@needs_root
async def test_a_job_may_write_nearly_its_whole_cap(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    """The filesystem under the capped folders leaves the job its cap: ext4's inode tables
    (6.25% of a small image) once filled a 100 MB cap at 92 MiB."""
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/outputs/big bs=1M count=95 2>&1 | tail -1",
        result_paths=[ResultPath(name="out", path="/outputs")],
        resources=Resources(disk=100_000_000),
    )
    result = await make_executor(result_disk_limit=10 * 1024 * MiB).run(request)
    assert result.exit_code == 0, result.stderr
    assert result.error_msg == "", result.error_msg
    assert (request.results_dir / "out" / "big").stat().st_size == 95 * MiB


@needs_root
async def test_sparse_file_past_the_cap_counts_at_its_apparent_size(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/outputs/sparse bs=1 count=0 seek=1G",
        result_paths=[ResultPath(name="out", path="/outputs")],
    )
    result = await make_executor(result_disk_limit=8 * MiB).run(request)
    assert result.exit_code == 0
    assert result.error_msg.startswith("disk limit exceeded")
    assert not (request.results_dir / "out" / "sparse").exists()


@needs_root
async def test_results_within_the_cap_are_kept_whole(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str, scratch: Path
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "mkdir -p /outputs/a/sub;"
        " dd if=/dev/zero of=/outputs/a/data bs=1M count=7 2>/dev/null;"
        " echo hi > /outputs/a/sub/hi.txt; ln -s sub/hi.txt /outputs/a/link;"
        " echo log > /logs/log.txt",
        result_paths=[
            ResultPath(name="out", path="/outputs"),
            ResultPath(name="logs", path="/logs"),
        ],
    )
    result = await make_executor(result_disk_limit=8 * MiB).run(request)
    assert result.error_msg == ""
    out = request.results_dir / "out" / "a"
    assert (out / "data").stat().st_size == 7 * MiB
    assert (out / "sub" / "hi.txt").read_text() == "hi\n"
    assert os.readlink(out / "link") == "sub/hi.txt"
    assert (request.results_dir / "logs" / "log.txt").read_text() == "log\n"
    await _scratch_emptied(scratch)


async def test_memory_hog_child_fails_the_run_even_when_the_job_exits_zero(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "dd if=/dev/zero of=/dev/null bs=100M count=1; echo survived",
        resources=Resources(memory=32 * MiB),
    )
    result = await make_executor().run(request)
    assert result.exit_code == 0
    assert result.stdout == "survived\n"
    assert result.error_msg.startswith("memory limit exceeded")


async def test_stdout_flood_is_capped_on_disk(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "yes flood | head -c 20000000; echo done >&2")
    result = await make_executor(stream_limit=MiB).run(request)
    assert result.exit_code == 0
    assert result.stdout_truncated
    assert (request.results_dir / "stdout").stat().st_size == MiB
    assert result.stderr == "done\n"


async def test_the_streams_are_capped_at_the_disk_the_job_asked_for(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str
) -> None:
    """A job that asked for 2 MB of disk keeps 2 MB of each stream on the node, not the
    node's gigabyte: they are files on its disk, as its results are."""
    request = shell(
        tmp_path,
        busybox_image,
        "yes flood | head -c 5000000; yes oops | head -c 3000000 >&2",
        resources=Resources(disk=2 * MiB),
    )
    result = await make_executor().run(request)
    assert result.exit_code == 0
    assert (request.results_dir / "stdout").stat().st_size == 2 * MiB
    assert (request.results_dir / "stderr").stat().st_size == 2 * MiB


@needs_root
async def test_timeout_leaves_no_container_and_no_scratch(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str, scratch: Path
) -> None:
    request = shell(
        tmp_path,
        busybox_image,
        "echo x > /outputs/x; sleep 60",
        result_paths=[ResultPath(name="out", path="/outputs")],
        timeout=1.0,
    )
    with pytest.raises(ExecutionTimeout):
        await make_executor().run(request)
    await _scratch_emptied(scratch)
    assert not mounts_under(scratch)


@needs_root
async def test_cancel_leaves_no_container_and_no_scratch(
    tmp_path: Path,
    make_executor: ExecutorFactory,
    busybox_image: str,
    scratch: Path,
    client: docker.DockerClient,
    prefix: str,
) -> None:
    executor = make_executor()
    request = shell(
        tmp_path,
        busybox_image,
        "echo running; sleep 60",
        result_paths=[ResultPath(name="out", path="/outputs")],
    )
    task = asyncio.create_task(executor.run(request))
    await _wait_until(lambda: "running" in _read(request.results_dir / "stdout"))
    assert _entries(scratch) == [request.execution_id]
    assert _loops_backed_by(scratch)
    await executor.cancel(request.execution_id)
    with pytest.raises(ExecutionCancelled):
        await task
    assert (
        client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
        )
        == []
    )
    await _scratch_emptied(scratch)
    await _wait_until(lambda: not _loops_backed_by(scratch))


KILLED_NODE = """
import asyncio, sys
from pathlib import Path
from bacalhau.executor import DockerExecutor, RunRequest
from bacalhau.models import ResultPath, SpecConfig

async def main() -> None:
    prefix, scratch, results, image = sys.argv[1:5]
    executor = DockerExecutor(name_prefix=prefix, scratch_dir=Path(scratch))
    params = {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": ["echo running; sleep 60"]}
    await executor.run(RunRequest(
        execution_id="e-killed", job_id="j-killed", engine=SpecConfig("docker", params),
        results_dir=Path(results), result_paths=[ResultPath(name="out", path="/outputs")],
    ))

asyncio.run(main())
"""


@needs_root
async def test_a_killed_node_leaves_nothing_mounted_once_its_container_is_gone(
    tmp_path: Path,
    busybox_image: str,
    scratch: Path,
    client: docker.DockerClient,
    prefix: str,
) -> None:
    results = tmp_path / "killed"
    node = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", KILLED_NODE, prefix, str(scratch), str(results), busybox_image),
        cwd=REPO,
    )
    try:
        await _wait_until(lambda: "running" in _read(results / "stdout"))
        # The job runs: the node's own mount is already detached, only the container holds it.
        await _wait_until(lambda: not mounts_under(scratch), timeout=5)
    finally:
        node.kill()
        await node.wait()
    assert _loops_backed_by(scratch)
    # What a restarted node does first: remove the containers of its prefix.
    for container in client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
    ):
        container.remove(force=True)
    await _wait_until(lambda: not _loops_backed_by(scratch))
    assert not mounts_under(scratch)


@needs_root
async def test_a_new_executor_removes_capped_folders_a_dead_one_left(
    make_executor: ExecutorFactory, scratch: Path
) -> None:
    stale = CappedFolders.layout(scratch, f"e-{uuid.uuid4()}", 4 * MiB, ["out"])
    await stale.mount()  # and killed before its container started: still mounted
    assert mounts_under(scratch)
    async with make_executor():
        assert _entries(scratch) == []
        assert not mounts_under(scratch)
    await stale.release()  # the descriptor this test holds
    await _wait_until(lambda: not _loops_backed_by(scratch))


async def _scratch_emptied(scratch: Path) -> None:
    """The capped filesystem of a finished run is released just after it (off its critical
    path): wait, bounded, until nothing is left of it."""
    await _wait_until(lambda: not _entries(scratch) and not mounts_under(scratch), timeout=10)


def _loops_backed_by(path: Path) -> list[str]:
    """Loop devices whose backing file is (or was, before its deletion) under ``path``."""
    listed = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if str(path) in line]


def _entries(path: Path) -> list[str]:
    return os.listdir(path) if os.path.isdir(path) else []


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@needs_root
async def test_a_result_named_with_a_leading_slash_stays_in_the_results(
    tmp_path: Path, make_executor: ExecutorFactory, busybox_image: str, scratch: Path
) -> None:
    # Bacalhau's own documents write `Name: /outputs`: the folder is `outputs`, under the
    # results, never the host's /outputs (where a capped run once put it).
    existed = await asyncio.to_thread(os.path.exists, "/outputs")
    executor = make_executor(result_disk_limit=8 * MiB)
    for _ in range(2):  # a second run once failed: "File exists: '/outputs'"
        request = shell(
            tmp_path,
            busybox_image,
            "echo results > /outputs/results.txt",
            result_paths=[ResultPath(name="/outputs", path="/outputs")],
        )
        result = await executor.run(request)
        assert result.error_msg == "" and result.exit_code == 0, result
        assert (request.results_dir / "outputs" / "results.txt").read_text() == "results\n"
    assert await asyncio.to_thread(os.path.exists, "/outputs") == existed
    await _scratch_emptied(scratch)


def test_the_writable_layer_is_measured_as_often_as_its_growth_needs() -> None:
    cap = 1000 * MiB
    # First look, and a layer that does not grow: soon, then seldom (the engine walks it).
    assert next_wait(None, (0.0, 0), cap=cap, least=2.0) == 2.0
    assert next_wait((0.0, 5 * MiB), (2.0, 5 * MiB), cap=cap, least=2.0) == MAX_INTERVAL
    # Growing at 10 MiB/s with 980 MiB of room: half of it would take 49 s; never past the most.
    assert next_wait((0.0, 0), (2.0, 20 * MiB), cap=cap, least=2.0) == MAX_INTERVAL
    # At 100 MiB/s with 400 MiB of room: again in 2 s, before half of it is gone.
    assert next_wait((0.0, 400 * MiB), (2.0, 600 * MiB), cap=cap, least=0.5) == 2.0
    # Faster still: no sooner than the least interval.
    assert next_wait((0.0, 0), (1.0, 900 * MiB), cap=cap, least=2.0) == 2.0
