"""A real ``bacalhau serve`` given API.Auth.Users as Bacalhau's documentation writes them:
it starts asking for credentials on both APIs, the CLI and SDK get in with them, and a file
whose users are wrong stops the node before it starts, naming the user and the field."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bacalhau.client import AsyncGrpcClient, Client, Credentials
from bacalhau.errors import Forbidden, Unauthorized
from bacalhau.node._devstack_plan import free_port
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    bacalhau_command,
    certified_node_dir,
    node_env,
    run_bacalhau,
)

pytestmark = pytest.mark.integration

API_KEY = "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E"
READER_PASSWORD = "MySecretPassword"

USERS_YAML = """\
DataDir: {data_dir}
API:
  Host: 127.0.0.1
  Port: {api_port}
  Auth:
    Users:
      - Alias: Read Only User
        Username: reader
        Password: '{reader_hash}'
        Capabilities:
          - Actions: ['read:*']
      - Alias: CI/CD Pipeline Token
        APIKey: {api_key}
        Capabilities:
          - Actions: ['read:job', 'write:job']
      - Alias: Admin User
        Username: admin
        Password: secureAdminPassword
        Capabilities:
          - Actions: ['*']
Orchestrator:
  Enabled: true
  Host: 127.0.0.1
  Port: {grpc_port}
Compute:
  Enabled: true
Publishers:
  Types:
    Local:
      Address: 127.0.0.1
      Port: {publisher_port}
engines: [noop]
api_grpc_port: {api_grpc_port}
"""


def _hash(password: str) -> str:
    """The hash the real `bacalhau auth hash-password` prints (cost 4: fast to check)."""
    done = subprocess.run(
        bacalhau_command("auth", "hash-password", "--cost", "4"),
        input=password + "\n",
        capture_output=True,
        text=True,
        env=node_env(),
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Node:
    api_port: int
    api_grpc_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    data_dir = certified_node_dir(tmp_path)
    api_port, api_grpc_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        USERS_YAML.format(
            data_dir=data_dir,
            api_port=api_port,
            api_grpc_port=api_grpc_port,
            grpc_port=free_port(),
            publisher_port=free_port(),
            reader_hash=_hash(READER_PASSWORD),
            api_key=API_KEY,
        )
    )
    served = NodeProcess(data_dir, ["--config", str(config)], data_dir_flag=False)
    try:
        served.wait_running()
        yield Node(api_port, api_grpc_port, served.log)
    finally:
        served.stop()


READ_ALL = [{"Actions": ["read:*"]}]
NOOP_JOB = {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}


def test_a_node_with_users_asks_every_client_for_credentials(node: Node) -> None:
    # Said once as it starts: a plain-text password is better stored hashed.
    warnings = [line for line in node.log.read_text().splitlines() if "plain-text" in line]
    assert len(warnings) == 1 and "Admin User" in warnings[0] and "hash-password" in warnings[0]

    with Client(node.url, credentials=Credentials.none()) as anonymous:
        assert anonymous.agent_alive()  # liveness stays open
        with pytest.raises(Unauthorized):
            anonymous.list_jobs()
    ci = Credentials.api_key(API_KEY)
    with Client(node.url, credentials=ci) as client:
        _, done = client.submit_and_wait(NOOP_JOB, timeout=60)
        assert done.job.state.is_terminal()
        with pytest.raises(Forbidden) as denied:
            client.list_nodes()
        assert "read:node" in denied.value.message
    reader = Credentials.basic("reader", READER_PASSWORD)
    with Client(node.url, credentials=reader) as client:
        assert [j.id for j in client.list_jobs().items] == [done.job.id]
        assert client.list_nodes()
        assert client.auth_status().user is not None
        with pytest.raises(Forbidden):
            client.submit(NOOP_JOB)
    with Client(node.url, credentials=Credentials.basic("admin", "secureAdminPassword")) as admin:
        assert admin.agent_config() is not None


async def test_the_grpc_api_of_that_node_asks_too(node: Node) -> None:
    target = f"127.0.0.1:{node.api_grpc_port}"
    async with AsyncGrpcClient(target, credentials=Credentials.none()) as anonymous:
        assert await anonymous.agent_alive()
        with pytest.raises(Unauthorized):
            await anonymous.list_jobs()
    reader = Credentials.basic("reader", READER_PASSWORD)
    async with AsyncGrpcClient(target, credentials=reader) as client:
        assert (await client.list_jobs()).items == []
        with pytest.raises(Forbidden):
            await client.stop_job("j-none")


def test_the_real_cli_takes_credentials_from_the_environment(node: Node) -> None:
    address = ["--api-host", "127.0.0.1", "--api-port", str(node.api_port)]
    refused = run_bacalhau(["job", "list", *address], env=node_env())
    assert refused.returncode == 1
    assert "Error: Request Unauthorized: Missing Authorization header" in refused.stderr
    assert "BACALHAU_API_KEY" in refused.stderr
    env = {**node_env(), "BACALHAU_API_KEY": API_KEY}
    listed = run_bacalhau(["job", "list", *address, "--output", "json"], env=env)
    assert listed.returncode == 0, listed.stderr
    info = run_bacalhau(["auth", "info", *address], env=env)
    assert "Authenticated as: CI/CD Pipeline Token, by Bearer" in info.stdout
    env = {**node_env(), "BACALHAU_API_USERNAME": "reader", "BACALHAU_API_PASSWORD": "nope"}
    wrong = run_bacalhau(["node", "list", *address], env=env)
    assert wrong.returncode == 1
    assert "invalid basic auth credentials" in wrong.stderr


@pytest.mark.parametrize(
    ("users", "message", "field"),
    [
        (
            "- {Username: alice, Password: secretpassword, Capabilities: [{Actions: ['*']}]}\n"
            "      - {Username: Alice, Password: otherpassword, Capabilities: [{Actions: ['*']}]}",
            "names the username 'Alice' twice",
            "API.Auth.Users[1].Username",
        ),
        (
            "- {Username: alice, Password: '$2a$10$tooShort', Capabilities: [{Actions: ['*']}]}",
            "is not a valid bcrypt hash",
            "API.Auth.Users[0].Password",
        ),
        (
            "- {Alias: nobody, Capabilities: [{Actions: ['*']}]}",
            "neither a username/password nor an API key",
            "API.Auth.Users[0]",
        ),
        (
            f"- {{APIKey: {API_KEY}, Capabilities: [{{Actions: ['read:jobs']}}]}}",
            "unknown action 'read:jobs'",
            "API.Auth.Users[0].Capabilities[0].Actions",
        ),
    ],
)
def test_a_node_whose_users_are_wrong_does_not_start(
    tmp_path: Path, users: str, message: str, field: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "Orchestrator: {Enabled: true}\n"
        f"API:\n  Port: {free_port()}\n  Auth:\n    Users:\n      {users}\n"
    )
    done = run_bacalhau(
        ["serve", "--data-dir", str(certified_node_dir(tmp_path)), "-c", str(config)],
        env=node_env(),
    )
    assert done.returncode == 1, done.stderr
    assert f"Error: {config}: " in done.stderr and message in done.stderr
    assert f"Field: {field}" in done.stderr
    assert "is running" not in done.stdout


def test_a_devstack_with_users_waits_for_its_nodes_with_a_user_that_reads_them(
    tmp_path: Path,
) -> None:
    users = json.dumps(
        [
            {"Username": "reader", "Password": _hash(READER_PASSWORD), "Capabilities": READ_ALL},
            {
                "APIKey": API_KEY,
                "Capabilities": [{"Actions": ["read:node", "read:job", "write:job"]}],
            },
        ]
    )
    stack = Devstack.start(
        tmp_path / "stack", compute_nodes=1, engines="noop", config=[f"API.Auth.Users={users}"]
    )
    stack.credentials = Credentials.api_key(API_KEY)
    try:
        with Client(stack.api_url, credentials=Credentials.api_key(API_KEY)) as client:
            nodes = client.list_nodes()
            assert len([n for n in nodes if n.info.compute is not None]) == 1
            assert client.submit_and_wait(NOOP_JOB, timeout=60)[1].job.state.is_terminal()
        with (
            Client(stack.api_url, credentials=Credentials.none()) as anonymous,
            pytest.raises(Unauthorized),
        ):
            anonymous.list_nodes()
        assert "not waiting for the compute nodes" not in stack.output()
    finally:
        stack.stop()


def test_a_devstack_whose_users_it_cannot_act_as_still_starts(tmp_path: Path) -> None:
    # Its only user has a hashed password: the devstack cannot act as it.
    users = json.dumps(
        [{"Username": "reader", "Password": _hash(READER_PASSWORD), "Capabilities": READ_ALL}]
    )
    stack = Devstack.start(
        tmp_path / "stack", compute_nodes=1, engines="noop", config=[f"API.Auth.Users={users}"]
    )
    reader = Credentials.basic("reader", READER_PASSWORD)
    stack.credentials = reader
    try:
        assert "not waiting for the compute nodes to join" in stack.output()
        with Client(stack.api_url, credentials=reader) as client:
            assert client.agent_alive()
    finally:
        stack.stop()
