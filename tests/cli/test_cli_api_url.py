"""The CLI reaches a node named by a URL, as upstream's own integration suite does
(``BACALHAU_API_HOST: 'http://bacalhau-orchestrator-node:5555'``), and says what is wrong
with a host that is neither a host nor such a URL."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bacalhau.cli import cli
from tests.cli.conftest import Cli


def test_a_url_with_its_port_in_the_api_host(bacalhau: Cli) -> None:
    port = bacalhau.server.port
    # The URL's port wins over --api-port (which points nowhere).
    args = ["--api-host", f"http://127.0.0.1:{port}", "--api-port", "1", "agent", "alive"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output


def test_a_url_in_the_environment(bacalhau: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACALHAU_API_HOST", f"http://127.0.0.1:{bacalhau.server.port}")
    monkeypatch.delenv("BACALHAU_API_PORT", raising=False)
    done = CliRunner().invoke(cli, ["agent", "version", "--output", "json"])
    assert done.exit_code == 0, done.output
    assert "GitVersion" in json.loads(done.stdout)


def test_a_host_that_is_no_host_nor_url_is_named() -> None:
    done = CliRunner().invoke(cli, ["--api-host", "ftp://node.example", "job", "list"])
    assert done.exit_code == 1
    assert "--api-host 'ftp://node.example' is neither a host name nor an http(s) URL" in (
        done.stderr
    )
    assert "Hint:" in done.stderr
