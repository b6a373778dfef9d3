"""A node whose port is taken says which port and which flag changes it; the API's job size
cap comes from the configuration."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bacalhau.errors import InvalidConfiguration
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.node import start_node
from tests.client.hybrid import hybrid_node_config as _config


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    ca = ClusterCA.create(tmp_path / "ca")
    ca.issue_node_certificate(
        NodeIdentity.load_or_create(tmp_path / "node"), data_dir=tmp_path / "node"
    )
    return tmp_path / "node"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("key", "flag"),
    [
        ("api_port", "--api-port"),
        ("api_grpc_port", "--api-grpc-port"),
        ("grpc_port", "--grpc-port"),
        ("publisher_port", "--publisher-port"),
    ],
)
async def test_a_busy_port_names_the_port_and_its_flag(
    node_dir: Path, busy_port: int, key: str, flag: str
) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        async with AsyncExitStack() as stack:
            await start_node(_config(node_dir, **{key: busy_port}), stack)
    err = caught.value
    assert f"127.0.0.1:{busy_port}" in err.message and "in use" in err.message
    assert flag in err.hint and "permissions" not in err.hint
    assert err.details["Field"] == flag


async def test_the_api_takes_its_job_size_cap_from_the_configuration(node_dir: Path) -> None:
    async with AsyncExitStack() as stack:
        node = await start_node(_config(node_dir, compute=False, max_job_size=2048), stack)
        url = f"http://127.0.0.1:{node.api_port}/api/v1/orchestrator/jobs"
        job: dict[str, Any] = {
            "Type": "batch",
            "Tasks": [{"Name": "m", "Engine": {"Type": "noop"}}],
        }
        async with aiohttp.ClientSession() as http:
            job["Meta"] = {"blob": "x" * 4096}
            async with http.put(url, json={"Job": job}) as r:
                assert r.status == 413
                assert (await r.json())["Code"] == "RequestEntityTooLarge"
            job["Meta"] = {"blob": "x" * 100}
            async with http.put(url, json={"Job": job}) as r:
                assert r.status == 200, await r.text()
