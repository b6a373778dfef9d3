"""Containing what a container does: the pids limit against a real fork bomb, removal that
survives cancellation, and the reaper that removes containers nobody owns."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import pytest

from bacalhau.errors import ExecutionTimeout
from bacalhau.executor import DockerExecutor, RunRequest
from bacalhau.executor.docker import DEFAULT_PIDS_LIMIT, LABEL_EXECUTION_ID, LABEL_EXECUTOR
from bacalhau.models import Resources
from tests.executor.conftest import new_request

#: The classic shell fork bomb (every call starts two more in the background), started from
#: one background subshell; the first shell then becomes a sleep, which holds the container
#: open without needing a fork. Started as ``b; exec sleep 60``, the first shell forked twice
#: itself, racing its own descendants for the last pids: when it lost, ash exited on "can't
#: fork" and took the container with it (about one run in twenty).
FORK_BOMB = "b(){ b|b& }; b & exec sleep 60"
PIDS_LIMIT = 24


@pytest.fixture
def client(busybox_image: str) -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def prefix() -> str:
    return f"bt{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def executor(client: docker.DockerClient, prefix: str) -> AsyncIterator[DockerExecutor]:
    executor = DockerExecutor(client=client, name_prefix=prefix, pids_limit=PIDS_LIMIT)
    yield executor
    await executor.close()  # (it waits for the removals the runs left under way)
    leftovers = _containers(client, prefix)
    for container in leftovers:
        container.remove(force=True)
    assert not leftovers, "the executor left containers behind"


def _containers(client: docker.DockerClient, prefix: str) -> list[Any]:
    return list(
        client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
        )
    )


def _fork_bomb(tmp_path: Path, image: str, **kwargs: Any) -> RunRequest:
    params = {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": [FORK_BOMB]}
    return new_request(tmp_path, "docker", params, resources=Resources(memory=32 << 20), **kwargs)


def _host_processes(container_id: str) -> int:
    """How many processes of the host run inside ``container_id`` (by their cgroup)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if container_id in (entry / "cgroup").read_text():
                count += 1
        except OSError:
            continue  # gone meanwhile
    return count


async def _container_id(client: docker.DockerClient, prefix: str, execution_id: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = client.containers.list(
            ignore_removed=True,
            filters={
                "label": [f"{LABEL_EXECUTOR}={prefix}", f"{LABEL_EXECUTION_ID}={execution_id}"]
            },
        )
        if found:
            return str(found[0].id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no running container for execution {execution_id}")


async def _peak_processes(container_id: str, until: asyncio.Future[Any]) -> int:
    peak = 0
    while not until.done():
        peak = max(peak, await asyncio.to_thread(_host_processes, container_id))
        await asyncio.sleep(0.05)
    return peak


async def _wait_until_running(client: docker.DockerClient, container_id: str) -> None:
    # Asked of the engine, not counted in /proc: a bomb that has already burnt out against
    # the limit leaves only its sleeping first shell, and under load the cgroup scan can
    # miss even that.
    deadline = time.monotonic() + 30
    while not client.api.inspect_container(container_id)["State"]["Running"]:
        assert time.monotonic() < deadline, "the fork bomb's container never ran"
        await asyncio.sleep(0.05)


def test_every_container_has_a_pids_limit_by_default() -> None:
    assert DockerExecutor().pids_limit == DEFAULT_PIDS_LIMIT
    with pytest.raises(ValueError):
        DockerExecutor(pids_limit=0)


async def test_fork_bomb_stays_within_the_pids_limit_and_its_container_goes(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = _fork_bomb(tmp_path, busybox_image, timeout=3.0)
    run = asyncio.ensure_future(executor.run(request))
    container_id = await _container_id(client, prefix, request.execution_id)
    assert client.api.inspect_container(container_id)["HostConfig"]["PidsLimit"] == PIDS_LIMIT
    peak = await _peak_processes(container_id, run)
    with pytest.raises(ExecutionTimeout):
        await run
    assert PIDS_LIMIT // 2 <= peak <= PIDS_LIMIT, peak
    # run() returns only once its container is really gone.
    assert _containers(client, prefix) == []


async def test_cancelled_fork_bomb_leaves_no_container(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = _fork_bomb(tmp_path, busybox_image, timeout=15.0)
    run = asyncio.ensure_future(executor.run(request))
    container_id = await _container_id(client, prefix, request.execution_id)
    # What matters here is that the container runs when the cancels land.
    await _wait_until_running(client, container_id)
    assert await asyncio.to_thread(_host_processes, container_id) <= PIDS_LIMIT
    # Cancelled twice, as a node shutting down does (the run, then whatever awaits it):
    # the second cancel lands while the container is being removed.
    run.cancel()
    await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    deadline = time.monotonic() + 5
    while _containers(client, prefix):
        assert time.monotonic() < deadline, "the cancelled run's container is still there"
        await asyncio.sleep(0.1)
    await executor.close()


async def test_close_waits_for_removals_that_cancelled_runs_left(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    request = _fork_bomb(tmp_path, busybox_image, timeout=15.0)
    run = asyncio.ensure_future(executor.run(request))
    container_id = await _container_id(client, prefix, request.execution_id)
    await _wait_until_running(client, container_id)
    run.cancel()
    await asyncio.sleep(0)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await executor.close()
    assert _containers(client, prefix) == []


class HeldCreate(docker.APIClient):  # type: ignore[misc]
    """The engine's own API, with the first container creation held until the test lets it
    through: how a run gets cancelled while the engine is creating its container, every time.
    Later creations go straight through; every one's arguments are recorded."""

    def __init__(self) -> None:
        super().__init__(**docker.utils.kwargs_from_env())
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[dict[str, Any]] = []
        self.created: list[str] = []

    def create_container(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(30)
        created = super().create_container(*args, **kwargs)
        self.created.append(created["Id"])
        return created

    def client(self) -> docker.DockerClient:
        """A client of the engine whose low-level API is this one."""
        client = docker.DockerClient.from_env()
        client.api = self
        return client


async def test_a_run_cancelled_while_its_container_is_created_still_removes_it(
    tmp_path: Path, client: Any, busybox_image: str, prefix: str
) -> None:
    held = HeldCreate()
    executor = DockerExecutor(client=held.client(), name_prefix=prefix)  # no reaper runs
    request = new_request(
        tmp_path, "docker", {"Image": busybox_image, "Entrypoint": ["sleep"], "Parameters": ["60"]}
    )
    run = asyncio.ensure_future(executor.run(request))
    try:
        assert await asyncio.to_thread(held.entered.wait, 10)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        # The cancelled run is gone; the engine creates its container all the same.
        held.release.set()
        deadline = time.monotonic() + 10
        while not held.created:
            assert time.monotonic() < deadline, "the engine did not create the container"
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 5
        while _containers(client, prefix):
            assert time.monotonic() < deadline, "nothing removes the container created late"
            await asyncio.sleep(0.05)
        await executor.close()
    finally:
        held.release.set()
        for container in _containers(client, prefix):
            container.remove(force=True)


async def test_reaper_removes_stray_containers_on_start_and_on_its_timer(
    client: Any, busybox_image: str, prefix: str
) -> None:
    def stray() -> Any:
        return client.containers.run(
            busybox_image,
            ["sleep", "60"],
            detach=True,
            labels={LABEL_EXECUTOR: prefix, LABEL_EXECUTION_ID: f"e-{uuid.uuid4()}"},
        )

    other = client.containers.create(busybox_image, ["true"], labels={LABEL_EXECUTOR: f"{prefix}x"})
    try:
        stray()
        executor = DockerExecutor(client=client, name_prefix=prefix, reap_interval=0.2)
        async with executor:
            assert _containers(client, prefix) == []  # removed at start
            stray()
            deadline = time.monotonic() + 5
            while _containers(client, prefix):
                assert time.monotonic() < deadline, "the reaper did not remove the stray"
                await asyncio.sleep(0.1)
        assert [c.id for c in _containers(client, f"{prefix}x")] == [other.id]
    finally:
        other.remove(force=True)
        for container in _containers(client, prefix):
            container.remove(force=True)


async def test_reaper_spares_the_container_of_a_run_in_progress(
    tmp_path: Path, client: Any, busybox_image: str, prefix: str
) -> None:
    params = {
        "Image": busybox_image,
        "Entrypoint": ["sh", "-c"],
        "Parameters": ["sleep 1; echo done"],
    }
    async with DockerExecutor(client=client, name_prefix=prefix, reap_interval=0.05) as executor:
        result = await executor.run(new_request(tmp_path, "docker", params))
    assert (result.exit_code, result.stdout) == (0, "done\n")
    assert _containers(client, prefix) == []


async def test_a_removal_already_in_progress_is_followed_until_the_container_is_gone(
    executor: DockerExecutor, busybox_image: str, client: Any, prefix: str
) -> None:
    execution_id = f"e-{uuid.uuid4()}"
    container = client.containers.run(
        busybox_image,
        ["sh", "-c", "trap '' TERM; sleep 60"],
        detach=True,
        labels={LABEL_EXECUTOR: prefix, LABEL_EXECUTION_ID: execution_id},
    )
    # Someone else (the engine's CLI, another call of ours) is removing it already: the
    # engine answers our removal with 409 until theirs is done, which is not "removed".
    other = asyncio.ensure_future(
        asyncio.to_thread(client.api.remove_container, container.id, force=True)
    )
    await asyncio.sleep(0.02)
    await executor.cancel(execution_id)
    assert _containers(client, prefix) == []
    await asyncio.gather(other, return_exceptions=True)
