"""`bacalhau profile save|select|list|show|delete` (Bacalhau v1.9), the files they write, and
which endpoint and credentials the CLI then uses."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bacalhau.api import Authorizer
from bacalhau.cli import _auth_cmd, cli
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.api.test_api_auth import READER_PASSWORD, _users, key_of


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "BACALHAU_API_KEY",
        "BACALHAU_API_USERNAME",
        "BACALHAU_API_PASSWORD",
        "BACALHAU_PROFILE",
        "BACALHAU_API_HOST",
        "BACALHAU_API_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "client"
    monkeypatch.setenv("BACALHAU_DIR", str(data_dir))
    return data_dir


@pytest.fixture
def secured() -> Iterator[ServerThread]:
    server = ServerThread(MemoryOrchestrator(), authorizer=Authorizer(_users())).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other() -> Iterator[ServerThread]:
    """A second, open, node: a profile's credentials must never reach it."""
    server = ServerThread(MemoryOrchestrator()).start()
    try:
        yield server
    finally:
        server.stop()


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_save_writes_bacalhau_s_layout_with_the_key_private(home: Path) -> None:
    out = ok(
        "profile",
        "save",
        "prod",
        "--endpoint",
        "https://api.example.com:443",
        "--api-key",
        "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E",
        "--timeout",
        "1m",
        "--description",
        "Production cluster",
        "--insecure",
    )
    assert out == 'Profile "prod" saved\n'
    path = home / "profiles" / "prod.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "endpoint": "https://api.example.com:443",
        "description": "Production cluster",
        "timeout": "1m",
        "auth": {"token": "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E"},
        "tls": {"insecure": True},
    }
    # Only what is set is written; an update changes only what is given.
    ok("profile", "save", "prod", "--description", "Prod", "--no-insecure")
    saved = yaml.safe_load(path.read_text())
    assert saved["description"] == "Prod" and "tls" not in saved
    assert saved["auth"] == {"token": "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ok("profile", "save", "prod", "--no-auth")
    assert "auth" not in yaml.safe_load(path.read_text())


def test_save_checks_what_it_is_given(home: Path) -> None:
    new = run("profile", "save", "dev")
    assert new.exit_code == 1
    assert "Error: endpoint is required when creating a new profile" in new.stderr
    bad = run("profile", "save", "dev", "--endpoint", "ftp://host:21")
    assert bad.exit_code == 1 and "the scheme must be http or https" in bad.stderr
    bad = run("profile", "save", "dev", "--endpoint", "host:1234", "--timeout", "10days")
    assert bad.exit_code == 1 and "timeout" in bad.stderr
    for name in ("../escape", "current", "a/b"):
        bad = run("profile", "save", name, "--endpoint", "host:1234")
        assert bad.exit_code == 1 and "cannot name a profile" in bad.stderr, name
    both = run("profile", "save", "dev", "--endpoint", "h:1", "--api-key", "k", "--username", "u")
    assert both.exit_code == 1 and "give one of --api-key, --username" in both.stderr
    assert not (home / "profiles" / "dev.yaml").exists()


def test_secrets_can_come_from_standard_input_or_a_prompt(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("profile", "save", "k", "--endpoint", "h:1", "--api-key", "-", input="key-from-stdin\n")
    assert yaml.safe_load((home / "profiles" / "k.yaml").read_text())["auth"] == {
        "token": "key-from-stdin"
    }
    ok(
        "profile",
        "save",
        "b",
        "--endpoint",
        "h:1",
        "--username",
        "alice",
        "--password",
        "-",
        input="pw-from-stdin\n",
    )
    assert yaml.safe_load((home / "profiles" / "b.yaml").read_text())["auth"] == {
        "username": "alice",
        "password": "pw-from-stdin",
    }
    no_password = run("profile", "save", "c", "--endpoint", "h:1", "--username", "alice")
    assert no_password.exit_code == 1 and "--username needs --password" in no_password.stderr
    monkeypatch.setattr(_auth_cmd, "stdin_is_terminal", lambda: True)
    result = run("profile", "save", "c", "--endpoint", "h:1", "--username", "bob", input="typed\n")
    assert result.exit_code == 0 and "typed" not in result.output
    assert yaml.safe_load((home / "profiles" / "c.yaml").read_text())["auth"]["password"] == "typed"


def test_select_list_show_and_delete(home: Path) -> None:
    assert ok("profile", "list") == "No profiles found\n"
    ok(
        "profile",
        "save",
        "prod",
        "--endpoint",
        "https://api.example.com:443",
        "--api-key",
        "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E",
    )
    ok("profile", "save", "staging", "--endpoint", "staging.example.com", "--select")
    assert os.readlink(home / "profiles" / "current") == "staging.yaml"  # as Bacalhau links it
    listed = ok("profile", "list").splitlines()
    assert listed[0].split() == ["CURRENT", "NAME", "ENDPOINT", "AUTH"]
    assert listed[1].split() == ["prod", "https://api.example.com:443", "token"]
    assert listed[2].split() == ["*", "staging", "staging.example.com"]
    entries = json.loads(ok("profile", "list", "--output", "json"))
    assert entries[1] == {
        "current": "*",
        "name": "staging",
        "endpoint": "staging.example.com",
        "auth": "",
    }
    assert ok("profile", "select", "prod") == 'Switched to profile "prod"\n'
    shown = ok("profile", "show")
    assert "Name:        prod (current)\n" in shown
    assert "Auth:        token (2E8D****3D9E)\n" in shown
    assert "TLS:         verified\nTimeout:     30s\n" in shown
    assert "3D9E)" in shown and "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E" not in shown
    assert "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E" in ok("profile", "show", "prod", "--show-token")
    staging = ok("profile", "show", "staging")
    assert "Name:        staging\n" in staging
    assert "TLS:         none (plain http)\n" in staging  # no scheme: http, as Bacalhau's
    # The one --profile or BACALHAU_PROFILE names is the one shown.
    assert "Name:        staging\n" in ok("--profile", "staging", "profile", "show")
    missing = run("profile", "select", "nope")
    assert missing.exit_code == 1 and "Error: profile 'nope' not found" in missing.stderr
    assert "the profiles are: prod, staging" in missing.stderr
    # Deleting the current one asks first.
    kept = run("profile", "delete", "prod", input="n\n")
    assert "Deletion cancelled" in kept.stdout and (home / "profiles" / "prod.yaml").exists()
    assert 'Profile "prod" deleted' in ok("profile", "delete", "prod", input="y\n")
    assert not (home / "profiles" / "current").exists()
    assert ok("profile", "delete", "staging") == 'Profile "staging" deleted\n'
    none = run("profile", "show")
    assert none.exit_code == 1 and "no current profile set" in none.stderr
    gone = run("profile", "delete", "staging")
    assert gone.exit_code == 1 and "not found" in gone.stderr


def test_delete_force_skips_the_question(home: Path) -> None:
    ok("profile", "save", "p", "--endpoint", "h:1", "--select")
    # No answer at all (standard input ends): not deleted, and the hint names --force.
    unanswered = run("profile", "delete", "p", input="")
    assert unanswered.exit_code == 1
    assert "not deleted without a confirmation" in unanswered.stderr
    assert "Hint: bacalhau profile delete p --force" in unanswered.stderr
    assert ok("profile", "delete", "p", "-f") == 'Profile "p" deleted\n'


def test_save_checks_the_endpoint_and_keeps_a_go_duration(home: Path) -> None:
    bad = run("profile", "save", "bad", "--endpoint", "not a host!")
    assert bad.exit_code == 1
    assert "'not a host!' is not a host name or an IP address" in bad.stderr
    assert not (home / "profiles" / "bad.yaml").exists()
    ok("profile", "save", "v6", "--endpoint", "[::1]:1234")
    # A bare number is seconds, written with its unit: Bacalhau's CLI reads the same file.
    ok("profile", "save", "t", "--endpoint", "h:1", "--timeout", "5")
    assert yaml.safe_load((home / "profiles" / "t.yaml").read_text())["timeout"] == "5s"


def test_the_current_profile_gives_the_endpoint_and_credentials(
    home: Path, secured: ServerThread
) -> None:
    endpoint = f"127.0.0.1:{secured.port}"
    ok("profile", "save", "sec", "--endpoint", endpoint, "--api-key", key_of("read:job"))
    assert run("job", "list").exit_code == 1  # not selected: the default address
    ok("profile", "select", "sec")
    assert ok("job", "list", "--output", "json").strip() == "[]"
    info = ok("auth", "info")
    assert f"Target environment: http://{endpoint}" in info and "Profile: sec" in info
    assert "from profile 'sec'" in info and "Authenticated as: only-read:job, by Bearer" in info
    denied = run("node", "list")
    assert denied.exit_code == 1
    assert "The API key ...6789 from profile 'sec' lacks the capability read:node" in (
        denied.stderr
    )
    # Basic credentials in a profile (ours).
    ok(
        "profile",
        "save",
        "basic",
        "--endpoint",
        endpoint,
        "--username",
        "reader",
        "--password",
        READER_PASSWORD,
    )
    assert run("--profile", "basic", "node", "list").exit_code == 0


def test_precedence_of_flags_variables_and_profiles(
    home: Path,
    secured: ServerThread,
    other: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(
        "profile",
        "save",
        "sec",
        "--endpoint",
        f"127.0.0.1:{secured.port}",
        "--api-key",
        key_of("read:job"),
        "--select",
    )
    ok("profile", "save", "open", "--endpoint", f"127.0.0.1:{other.port}")
    other.run(other.orchestrator.submit_job(_job()))  # type: ignore[attr-defined]

    def jobs(*args: str) -> int:
        result = run(*args, "job", "list", "--output", "json")
        assert result.exit_code == 0, result.output
        return len(json.loads(result.stdout))

    assert jobs() == 0  # the current profile: the secured node, with its key
    # --profile beats BACALHAU_PROFILE, which beats the current one.
    monkeypatch.setenv("BACALHAU_PROFILE", "open")
    assert jobs() == 1
    assert jobs("--profile", "sec") == 0
    monkeypatch.delenv("BACALHAU_PROFILE")
    # An address from flags, variables or -c outranks the profile's, and the profile's
    # credentials stay home: the open node sees none.
    assert jobs("--api-port", str(other.port)) == 1
    assert "Credentials sent: no credentials" in ok("--api-port", str(other.port), "auth", "info")
    monkeypatch.setenv("BACALHAU_API_PORT", str(other.port))
    assert jobs() == 1
    monkeypatch.delenv("BACALHAU_API_PORT")
    assert jobs("-c", f"API.Port={other.port}") == 1
    # The data dir's config.yaml (often the node's own) does not outrank a chosen profile.
    home.mkdir(exist_ok=True)
    (home / "config.yaml").write_text(f"API:\n  Port: {other.port}\n")
    assert jobs() == 0
    assert jobs("--profile", "open") == 1
    # Credentials from the environment outrank the profile's.
    monkeypatch.setenv("BACALHAU_API_KEY", key_of("read:node"))
    refused = run("job", "list")
    assert refused.exit_code == 1 and "from BACALHAU_API_KEY lacks" in refused.stderr


def test_a_profile_named_but_missing_is_an_error_a_dangling_current_is_not(
    home: Path, other: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = run("--profile", "ghost", "job", "list")
    assert missing.exit_code == 1 and "Error: profile 'ghost' not found" in missing.stderr
    monkeypatch.setenv("BACALHAU_PROFILE", "ghost")
    assert run("job", "list").exit_code == 1
    monkeypatch.delenv("BACALHAU_PROFILE")
    ok("profile", "save", "gone", "--endpoint", "127.0.0.1:9", "--select")
    (home / "profiles" / "gone.yaml").unlink()
    result = run("--api-port", str(other.port), "job", "list")
    assert result.exit_code == 0  # the dangling link does not stop the command


def _job() -> object:
    from bacalhau.models import Job
    from tests.api.test_api_jobs import spec

    return Job.from_dict(spec(Name="on-the-open-node"))
