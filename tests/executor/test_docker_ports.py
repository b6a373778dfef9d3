"""``Network.Ports`` on the real Docker engine, through the compute pipeline (its port
allocator, the execution's environment, the Docker executor): a Bridge container serving on
its target port is reached from the host at the allocated host port; a Host-network one
listens on its host port itself. The client is a plain socket on the host; the server is
busybox ``nc`` in the local image."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from bacalhau.compute import (
    ExecutionPipeline,
    ExecutionStore,
    LocalExecution,
    PortAllocator,
    host_port_free,
)
from bacalhau.errors import ExecutionFailed
from bacalhau.executor import DockerExecutor
from bacalhau.executor.docker import LABEL_EXECUTION_ID
from bacalhau.models import (
    Execution,
    LocalExecutionState,
    NetworkConfig,
    NetworkType,
    PortMapping,
)
from tests.compute.jobs import make_execution
from tests.compute.test_ports import free_run
from tests.compute.waiting import eventually
from tests.executor.conftest import new_request

pytestmark = pytest.mark.integration

L = LocalExecutionState
GREETING = "hello from the container"


@dataclass
class Rig:
    store: ExecutionStore
    pipeline: ExecutionPipeline
    ports: PortAllocator
    client: docker.DockerClient
    image: str

    def submit(self, kind: NetworkType, script: str, *mappings: PortMapping) -> Execution:
        params = {"Image": self.image, "Entrypoint": ["sh", "-c"], "Parameters": [script]}
        execution = make_execution(engine="docker", params=params, network=kind, timeout=60)
        assert execution.job is not None
        execution.job.task.network.ports = list(mappings)
        self.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        return execution


@pytest.fixture
async def rig(busybox_image: str, tmp_path: Path) -> AsyncIterator[Rig]:
    first = free_run(8)
    ports = PortAllocator(first, first + 7)
    client = docker.from_env()
    prefix = f"bp{uuid.uuid4().hex[:10]}"
    async with DockerExecutor(
        client=client, name_prefix=prefix, scratch_dir=tmp_path / "scratch"
    ) as docker_executor:
        with ExecutionStore(tmp_path / "compute.db") as store:
            pipeline = ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors={"docker": docker_executor},
                publishers={},
                results_root=tmp_path / "executions",
                ports=ports,
            )
            yield Rig(store, pipeline, ports, client, busybox_image)
            pipeline.close()


async def _read_from(port: int, timeout: float = 20.0) -> str:
    """What a server on ``127.0.0.1:port`` sends, once it listens (until then Docker's proxy
    accepts and drops the connection, or nothing answers)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            data = await reader.read()
            writer.close()
            if data:
                return data.decode()
            await asyncio.sleep(0.05)


async def _serve_and_read(rig: Rig, execution: Execution, name: str) -> tuple[str, int]:
    run = asyncio.create_task(rig.pipeline.run(execution.id))
    await eventually(lambda: bool(rig.ports.held_by(execution.id)) or run.done())
    assert not run.done(), (await run).message
    host_port = _host_port(rig, execution, name)
    try:
        received = await _read_from(host_port)
    finally:
        record: LocalExecution = await run
    assert record.state is L.COMPLETED, record.message
    return received, host_port


def _host_port(rig: Rig, execution: Execution, name: str) -> int:
    assert execution.job is not None
    names = [p.name for p in execution.job.task.network.ports]
    return rig.ports.held_by(execution.id)[names.index(name)]


def _stdout(rig: Rig, execution: Execution) -> list[str]:
    record = rig.store.get(execution.id)
    assert record.run_output is not None
    return record.run_output.stdout.split()


async def test_a_bridge_container_is_reached_at_its_allocated_host_port(rig: Rig) -> None:
    script = (
        "echo $BACALHAU_HOST_PORT_web $BACALHAU_PORT_web; "
        f"echo {GREETING} | busybox nc -l -p $BACALHAU_PORT_web"
    )
    execution = rig.submit(NetworkType.BRIDGE, script, PortMapping(name="web", target=8080))
    received, host_port = await _serve_and_read(rig, execution, "web")
    assert received.strip() == GREETING
    assert rig.ports.start <= host_port <= rig.ports.end
    assert _stdout(rig, execution) == [str(host_port), "8080"]
    # Given back, and free on the host again once the container is gone.
    assert rig.ports.held_by(execution.id) == []
    await eventually(lambda: host_port_free(host_port))


async def test_a_bridge_port_without_target_listens_on_its_host_port(rig: Rig) -> None:
    script = f"echo $BACALHAU_PORT_http; echo {GREETING} | busybox nc -l -p $BACALHAU_PORT_http"
    execution = rig.submit(NetworkType.BRIDGE, script, PortMapping(name="http"))
    received, host_port = await _serve_and_read(rig, execution, "http")
    assert received.strip() == GREETING
    assert _stdout(rig, execution) == [str(host_port)]


async def test_a_static_port_is_published_on_its_host_network_only(rig: Rig) -> None:
    static = free_run(1)
    script = f"echo {GREETING} | busybox nc -l -p 6060"
    mapping = PortMapping(name="admin", static=static, target=6060, host_network="127.0.0.1")
    execution = rig.submit(NetworkType.BRIDGE, script, mapping)
    run = asyncio.create_task(rig.pipeline.run(execution.id))
    await eventually(lambda: bool(_containers(rig, execution)) or run.done())
    assert not run.done(), (await run).message
    (container,) = _containers(rig, execution)
    await eventually(lambda: run.done() or bool(_bindings(rig, container)))
    assert not run.done(), (await run).message
    assert _bindings(rig, container) == {
        "6060/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(static)}]
    }
    assert (await _read_from(static)).strip() == GREETING
    assert (await run).state is L.COMPLETED


async def test_a_host_network_task_binds_its_host_port_itself(rig: Rig) -> None:
    script = (
        "echo $BACALHAU_HOST_PORT_web $BACALHAU_PORT_web; "
        f"echo {GREETING} | busybox nc -l -p $BACALHAU_HOST_PORT_web"
    )
    execution = rig.submit(NetworkType.HOST, script, PortMapping(name="web"))
    received, host_port = await _serve_and_read(rig, execution, "web")
    assert received.strip() == GREETING
    assert _stdout(rig, execution) == [str(host_port), str(host_port)]


async def test_a_request_with_an_unallocated_port_is_refused(
    busybox_image: str, tmp_path: Path
) -> None:
    network = NetworkConfig(type=NetworkType.BRIDGE, ports=[PortMapping(name="web", target=80)])
    request = new_request(
        tmp_path, "docker", {"Image": busybox_image, "Parameters": ["true"]}, network=network
    )
    async with DockerExecutor(name_prefix=f"bp{uuid.uuid4().hex[:10]}") as executor:
        with pytest.raises(ExecutionFailed, match="web has no host port"):
            await executor.run(request)


def _containers(rig: Rig, execution: Execution) -> list[Any]:
    # Sparse: no inspection of each one found, which fails if the run ends and removes it
    # between the listing and the inspection.
    found = rig.client.containers.list(
        all=True, sparse=True, filters={"label": f"{LABEL_EXECUTION_ID}={execution.id}"}
    )
    return list(found)


def _bindings(rig: Rig, container: Any) -> dict[str, Any]:
    try:
        info = rig.client.api.inspect_container(container.id)
    except docker.errors.NotFound:
        return {}  # the run ended and took it away: the caller looks at the run
    return dict(info["HostConfig"].get("PortBindings") or {})
