"""`bacalhau auth hash-password|info`, and the CLI's credentials from the environment against
an API with users."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from click.testing import CliRunner, Result

from bacalhau.api import Authorizer
from bacalhau.cli import _auth_cmd, cli
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.api.test_api_auth import READER_PASSWORD, _users, key_of

ENV = ("BACALHAU_API_KEY", "BACALHAU_API_USERNAME", "BACALHAU_API_PASSWORD")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*ENV, "BACALHAU_PROFILE", "BACALHAU_API_HOST", "BACALHAU_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACALHAU_DIR", str(tmp_path / "client"))


@pytest.fixture
def secured() -> Iterator[ServerThread]:
    server = ServerThread(MemoryOrchestrator(), authorizer=Authorizer(_users())).start()
    try:
        yield server
    finally:
        server.stop()


def run(args: list[str], *, port: int | None = None, input: str | None = None) -> Result:
    address = ["--api-host", "127.0.0.1", "--api-port", str(port)] if port else []
    return CliRunner().invoke(cli, [*address, *args], input=input, catch_exceptions=False)


def test_hash_password_prints_a_bcrypt_hash_of_standard_input() -> None:
    result = run(["auth", "hash-password", "--cost", "4"], input="  s3cret password \n")
    assert result.exit_code == 0, result.output
    hashed = result.stdout.strip()
    assert hashed.startswith("$2b$04$") and len(hashed) == 60
    assert bcrypt.checkpw(b"s3cret password", hashed.encode())  # trimmed, as Bacalhau does
    # Bacalhau's cost by default.
    default = run(["auth", "hash-password"], input="another one\n").stdout.strip()
    assert default.startswith("$2b$10$") and bcrypt.checkpw(b"another one", default.encode())


def test_hash_password_refuses_empty_and_overlong_passwords() -> None:
    empty = run(["auth", "hash-password"], input="\n")
    assert empty.exit_code == 1 and "Error: password cannot be empty" in empty.stderr
    long = run(["auth", "hash-password"], input="x" * 73 + "\n")
    assert long.exit_code == 1 and "longer than bcrypt's 72 bytes" in long.stderr


def test_hash_password_asks_twice_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_auth_cmd, "stdin_is_terminal", lambda: True)
    result = run(["auth", "hash-password", "--cost", "4"], input="typed-pass\ntyped-pass\n")
    assert result.exit_code == 0
    assert "Enter password" in result.stderr and "Confirm password" in result.stderr
    assert "typed-pass" not in result.output  # no echo
    assert bcrypt.checkpw(b"typed-pass", result.stdout.strip().encode())
    # Two different answers are asked again; none the same in the end aborts.
    result = run(["auth", "hash-password"], input="one-pass\ntwo-pass\n")
    assert result.exit_code != 0 and "do not match" in result.stderr
    assert "$2b$" not in result.stdout


def test_the_cli_sends_the_environment_s_credentials(
    secured: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(["job", "list"], port=secured.port)
    assert result.exit_code == 1
    assert "Error: Request Unauthorized: Missing Authorization header" in result.stderr
    assert "Hint: this API asks for credentials: set BACALHAU_API_KEY, or" in result.stderr
    monkeypatch.setenv("BACALHAU_API_USERNAME", "reader")
    monkeypatch.setenv("BACALHAU_API_PASSWORD", READER_PASSWORD)
    assert run(["job", "list"], port=secured.port).exit_code == 0
    assert run(["node", "list"], port=secured.port).exit_code == 0
    denied = run(["docker", "run", "--wait=false", "busybox"], port=secured.port)
    assert denied.exit_code == 1
    assert "Error: Request Forbidden: user 'reader' does not have the required capability " in (
        denied.stderr
    )
    # Bacalhau's hint first (its own suite looks for it), then who lacks what.
    assert (
        "Hint: Check if user have access to this resource. Event has been recorded. The "
        "username reader from BACALHAU_API_USERNAME/BACALHAU_API_PASSWORD lacks the "
        "capability write:job"
    ) in denied.stderr
    monkeypatch.setenv("BACALHAU_API_KEY", key_of("read:job"))
    both = run(["job", "list"], port=secured.port)
    assert both.exit_code == 1
    assert "can't use both BACALHAU_API_KEY and BACALHAU_API_USERNAME" in both.stderr
    monkeypatch.delenv("BACALHAU_API_USERNAME")
    monkeypatch.delenv("BACALHAU_API_PASSWORD")
    assert run(["job", "list"], port=secured.port).exit_code == 0
    monkeypatch.setenv("BACALHAU_API_KEY", "wrong-key-0123456789abcdef")
    wrong = run(["job", "list"], port=secured.port)
    assert wrong.exit_code == 1
    assert "Hint: the API refused the API key ...cdef from BACALHAU_API_KEY (invalid API key)" in (
        wrong.stderr
    )


def test_data_commands_send_them_too(
    secured: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(["data", "ls", "bafkqaaa"], port=secured.port)
    assert result.exit_code == 1 and "Request Unauthorized" in result.stderr
    # This server has no data API: a known user (the key was sent) learns it is not there.
    monkeypatch.setenv("BACALHAU_API_KEY", key_of("read:node"))
    result = run(["data", "ls", "bafkqaaa"], port=secured.port)
    assert result.exit_code == 1 and "Error: Not Found: GET /api/v1/data" in result.stderr


def test_auth_info_says_who_the_api_takes_you_for(
    secured: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    none = run(["auth", "info"], port=secured.port)
    assert none.exit_code == 0, none.output
    assert f"Target environment: http://127.0.0.1:{secured.port}" in none.stdout
    assert "API Key: Not Set" in none.stdout
    assert "Credentials sent: no credentials" in none.stdout
    assert "Server: requires authentication (Basic, Bearer)" in none.stdout
    assert "Authenticated: no credentials sent" in none.stdout
    monkeypatch.setenv("BACALHAU_API_USERNAME", "reader")
    monkeypatch.setenv("BACALHAU_API_PASSWORD", READER_PASSWORD)
    known = run(["auth", "info"], port=secured.port)
    assert "Username: Set" in known.stdout and "Password: Set" in known.stdout
    assert (
        "Credentials sent: username reader (from BACALHAU_API_USERNAME/BACALHAU_API_PASSWORD)"
        in known.stdout
    )
    assert "Authenticated as: reader, by Basic" in known.stdout
    assert "Capabilities: read:*" in known.stdout
    data = json.loads(run(["auth", "info", "--output", "json"], port=secured.port).stdout)
    assert data["Server"]["User"]["Capabilities"] == ["read:*"]
    assert data["Environment"]["BACALHAU_API_KEY"] == "Not Set"
    monkeypatch.setenv("BACALHAU_API_PASSWORD", "wrong password")
    refused = run(["auth", "info"], port=secured.port)
    assert refused.exit_code == 1
    assert "the credentials were refused: invalid basic auth credentials" in refused.stdout
    assert "Error: Request Unauthorized" in refused.stderr


def test_auth_info_on_an_open_api(bacalhau_port: int) -> None:
    result = run(["auth", "info"], port=bacalhau_port)
    assert result.exit_code == 0
    assert "Server: open, no authentication required" in result.stdout


@pytest.fixture
def bacalhau_port() -> Iterator[int]:
    server = ServerThread(MemoryOrchestrator()).start()
    try:
        yield server.port
    finally:
        server.stop()
