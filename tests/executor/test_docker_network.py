"""Network modes of Docker jobs on the real engine: HTTP through the node's proxy (allowed
domain served, other domain refused, no direct route), and Full on the host's network.

The "domains" are local HTTP servers: the proxy is given a resolver that maps the test names
to 127.0.0.1, so no lookup and no packet leaves the machine. The client in the container is
busybox ``nc`` speaking HTTP to the address in ``$http_proxy`` (busybox ``wget`` of the local
image crashes before it sends anything, proxy or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from bacalhau.errors import ExecutionCancelled
from bacalhau.executor import DockerExecutor, RunRequest
from bacalhau.executor.docker import LABEL_EXECUTOR
from bacalhau.executor.network import EgressProxy
from bacalhau.models import NetworkConfig, NetworkType
from tests.executor.conftest import new_request
from tests.executor.test_docker_containment import HeldCreate

ALLOWED = "www.allowed.test"
FORBIDDEN = "forbidden.test"


@dataclass
class Origin:
    """A local HTTP server standing for one domain; it records the requests it got."""

    body: str
    port: int = 0
    requests: list[str] = field(default_factory=list)


async def _serve_origin(origin: Origin, host: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        origin.requests.append(head.decode().split("\r\n")[0])
        body = origin.body.encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    origin.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture
async def origins() -> AsyncIterator[dict[str, Origin]]:
    found = {ALLOWED: Origin("allowed body"), FORBIDDEN: Origin("forbidden body")}
    servers = [await _serve_origin(o, "127.0.0.1") for o in found.values()]
    yield found
    for server in servers:
        server.close()


@pytest.fixture
async def executor(busybox_image: str, tmp_path: Path) -> AsyncIterator[DockerExecutor]:
    async def resolve(host: str, port: int) -> list[str]:
        if host in (ALLOWED, FORBIDDEN):
            return ["127.0.0.1"]
        raise OSError(f"unknown test host {host}")

    prefix = f"bn{uuid.uuid4().hex[:10]}"
    client = docker.from_env()
    proxy = EgressProxy(resolver=resolve, allow_local_targets=True)
    async with DockerExecutor(
        client=client, name_prefix=prefix, scratch_dir=tmp_path / "scratch", egress_proxy=proxy
    ) as ex:
        yield ex
    assert (
        client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
        )
        == []
    )
    assert client.networks.list(names=[f"{prefix}-http"]) == []
    assert _input_rules_for(ex) == []


def _input_rules_for(executor: DockerExecutor) -> list[str]:
    """The host firewall rules naming the executor's HTTP-mode bridge."""
    bridge = executor._egress.bridge
    listed = subprocess.run(
        ["iptables", "-w", "5", "-S", "INPUT"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listed.splitlines() if f"-i {bridge} " in line + " "]


def shell(tmp_path: Path, image: str, script: str, **kwargs: Any) -> RunRequest:
    params = {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": [script]}
    return new_request(tmp_path, "docker", params, **kwargs)


def http_mode(*domains: str) -> NetworkConfig:
    return NetworkConfig(NetworkType.HTTP, list(domains))


#: The proxy's address from the environment the executor gave the job.
PROXY = "p=${http_proxy#http://}; ph=${p%:*}; pp=${p##*:}; "


async def test_http_mode_reaches_an_allowed_domain_through_the_proxy(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, origins: dict[str, Origin]
) -> None:
    port = origins[ALLOWED].port
    script = (
        PROXY
        + f"printf 'GET http://{ALLOWED}:{port}/plain HTTP/1.0\\r\\n\\r\\n'"
        + " | busybox nc -w 5 $ph $pp; echo;"
        + f" printf 'CONNECT {ALLOWED}:{port} HTTP/1.1\\r\\n\\r\\nGET /tunnel HTTP/1.0\\r\\n\\r\\n'"
        + " | busybox nc -w 5 $ph $pp"
    )
    request = shell(tmp_path, busybox_image, script, network=http_mode(".allowed.test"))
    result = await executor.run(request)
    assert result.stdout.count("allowed body") == 2, result.stdout + result.stderr
    assert "HTTP/1.1 200 Connection established" in result.stdout
    assert origins[ALLOWED].requests == ["GET /plain HTTP/1.0", "GET /tunnel HTTP/1.0"]


async def test_http_mode_sets_the_proxy_variables(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    request = shell(tmp_path, busybox_image, "env | sort", network=http_mode("example.com"))
    result = await executor.run(request)
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    proxy = env["http_proxy"]
    assert proxy.startswith("http://")
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "https_proxy"):
        assert env[key] == proxy
    assert "localhost" in env["NO_PROXY"]


async def test_http_mode_refuses_another_domain_with_403(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, origins: dict[str, Origin]
) -> None:
    port = origins[FORBIDDEN].port
    script = (
        PROXY
        + f"printf 'GET http://{FORBIDDEN}:{port}/ HTTP/1.0\\r\\n\\r\\n'"
        + " | busybox nc -w 5 $ph $pp; echo;"
        + f" printf 'CONNECT {FORBIDDEN}:{port} HTTP/1.1\\r\\n\\r\\n' | busybox nc -w 5 $ph $pp"
    )
    request = shell(tmp_path, busybox_image, script, network=http_mode(".allowed.test"))
    result = await executor.run(request)
    assert result.stdout.count("HTTP/1.1 403 Forbidden") == 2, result.stdout + result.stderr
    assert f"{FORBIDDEN} is not in the job's allowed domains" in result.stdout
    assert origins[FORBIDDEN].requests == []


async def test_http_mode_has_no_direct_route(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    # A server on every host address: only the firewall keeps the job from it.
    wide_open = Origin("should not be reached")
    server = await _serve_origin(wide_open, "0.0.0.0")
    try:
        script = (
            PROXY
            + f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 $ph {wide_open.port}"
            + " && echo gateway=open || echo gateway=closed;"
            + " busybox nc -w 2 192.0.2.1 80 </dev/null && echo outside=open"
            + " || echo outside=closed"
        )
        request = shell(tmp_path, busybox_image, script, network=http_mode(".allowed.test"))
        result = await executor.run(request)
    finally:
        server.close()
    assert result.stdout.split() == ["gateway=closed", "outside=closed"], result.stderr
    assert wide_open.requests == []


async def test_full_mode_reaches_a_local_server(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str, origins: dict[str, Origin]
) -> None:
    port = origins[FORBIDDEN].port
    script = f"printf 'GET /full HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 127.0.0.1 {port}"
    request = shell(tmp_path, busybox_image, script, network=NetworkConfig(NetworkType.FULL))
    result = await executor.run(request)
    assert "forbidden body" in result.stdout
    assert origins[FORBIDDEN].requests == ["GET /full HTTP/1.0"]


async def test_a_new_executor_removes_the_network_and_rules_a_dead_one_left(
    tmp_path: Path, busybox_image: str
) -> None:
    client = docker.from_env()
    prefix = f"bn{uuid.uuid4().hex[:10]}"
    proxy = EgressProxy()
    dead = DockerExecutor(
        client=client, name_prefix=prefix, scratch_dir=tmp_path / "s", egress_proxy=proxy
    )
    await dead.run(shell(tmp_path, busybox_image, "true", network=http_mode("example.com")))
    # The process dies: nothing of it is closed, only its listening socket goes with it.
    await proxy.close()
    assert client.networks.list(names=[f"{prefix}-http"]) != []
    assert len(_input_rules_for(dead)) == 2
    async with DockerExecutor(
        client=client, name_prefix=prefix, scratch_dir=tmp_path / "s"
    ) as restarted:
        assert client.networks.list(names=[f"{prefix}-http"]) == []
        assert _input_rules_for(restarted) == []


async def test_http_mode_jobs_cannot_reach_each_other(
    tmp_path: Path, executor: DockerExecutor, busybox_image: str
) -> None:
    listener = shell(
        tmp_path,
        busybox_image,
        "ip -4 -o addr show eth0; busybox nc -l -p 8000",
        network=http_mode("example.com"),
    )
    listening = asyncio.create_task(executor.run(listener))
    try:
        stdout = listener.results_dir / "stdout"
        deadline = asyncio.get_running_loop().time() + 20
        while " inet " not in (stdout.read_text() if stdout.exists() else ""):
            assert asyncio.get_running_loop().time() < deadline, "the listener never started"
            await asyncio.sleep(0.05)
        address = stdout.read_text().split(" inet ")[1].split("/")[0]
        dialer = shell(
            tmp_path,
            busybox_image,
            f"busybox nc -w 2 {address} 8000 </dev/null && echo open || echo closed",
            network=http_mode("example.com"),
        )
        result = await executor.run(dialer)
    finally:
        await executor.cancel(listener.execution_id)
        with contextlib.suppress(ExecutionCancelled):
            await listening
    assert result.stdout == "closed\n"


def _address(create_kwargs: dict[str, Any]) -> str:
    endpoints = create_kwargs["networking_config"]["EndpointsConfig"]
    return str(next(iter(endpoints.values()))["IPAMConfig"]["IPv4Address"])


async def test_a_run_cancelled_during_its_create_keeps_its_address_until_its_container_goes(
    tmp_path: Path, busybox_image: str
) -> None:
    held = HeldCreate()
    prefix = f"bn{uuid.uuid4().hex[:10]}"
    async with DockerExecutor(
        client=held.client(), name_prefix=prefix, scratch_dir=tmp_path / "scratch"
    ) as executor:
        cancelled = asyncio.ensure_future(
            executor.run(shell(tmp_path, busybox_image, "sleep 60", network=http_mode("a.test")))
        )
        try:
            assert await asyncio.to_thread(held.entered.wait, 10)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            # The engine is still creating the cancelled run's container, with its address.
            await executor.run(shell(tmp_path, busybox_image, "true", network=http_mode("a.test")))
        finally:
            held.release.set()
    assert len(held.calls) == 2
    assert _address(held.calls[1]) != _address(held.calls[0])
    client = docker.from_env()
    assert (
        client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_EXECUTOR}={prefix}"}
        )
        == []
    )
