"""The CLI reaches an API behind a TLS-terminating proxy as Bacalhau's client does, told by
``API.TLS.UseTLS``, ``API.TLS.Insecure`` and ``API.TLS.CAFile`` (``-c``, the data dir's
``config.yaml`` or ``BACALHAU_API_TLS_*``); and a ``-c`` is checked whatever names the API."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bacalhau.cli import cli
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread
from tests.self_signed import self_signed_localhost


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) PEM files."""
    cert, key = self_signed_localhost()
    cert_file, key_file = tmp / "api.pem", tmp / "api.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    return cert_file, key_file


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """An open API behind a TLS proxy with a self-signed certificate: (its port, the
    certificate's file); the CLI's environment points at the proxy (plain host and port)."""
    for name in ("BACALHAU_API_KEY", "BACALHAU_PROFILE", "BACALHAU_HTTPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACALHAU_DIR", str(tmp_path / "client"))
    cert, key = self_signed(tmp_path)
    server = ServerThread(MemoryOrchestrator()).start()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.gather(_relay(r, uw), _relay(ur, w))

    async def start() -> asyncio.Server:
        return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)

    proxy = server.run(start())
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("BACALHAU_API_HOST", "127.0.0.1")
    monkeypatch.setenv("BACALHAU_API_PORT", str(port))

    async def close() -> None:
        proxy.close()  # on the server's own loop: asyncio servers are not thread-safe

    try:
        yield port, cert
    finally:
        server.run(close())
        server.stop()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_use_tls_with_insecure_or_a_ca_file_reaches_the_api(
    proxied: tuple[int, Path], tmp_path: Path
) -> None:
    _, cert = proxied
    insecure = run("agent", "alive", "-c", "API.TLS.UseTLS=true", "-c", "API.TLS.Insecure=true")
    assert insecure.exit_code == 0, insecure.output
    assert "OK" in insecure.stdout
    with_ca = run("agent", "alive", "-c", "API.TLS.UseTLS=true", "-c", f"API.TLS.CAFile={cert}")
    assert with_ca.exit_code == 0, with_ca.output
    # Without either, the system's authorities do not know this certificate.
    unknown = run("agent", "alive", "-c", "API.TLS.UseTLS=true")
    assert unknown.exit_code == 1
    assert "certificate" in unknown.stderr.lower()
    # Plain HTTP to a TLS port fails: UseTLS is what made the requests above https.
    assert run("agent", "alive").exit_code == 1
    missing = run("agent", "alive", "-c", "API.TLS.UseTLS=1", "-c", "API.TLS.CAFile=/nope.pem")
    assert missing.exit_code == 1
    assert "API.TLS.CAFile '/nope.pem' is not a file" in missing.stderr


def test_the_data_dir_config_and_bacalhau_s_variables_say_it_too(
    proxied: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's config.yaml holding UseTLS was refused as a node would refuse it."""
    (tmp_path / "client").mkdir(exist_ok=True)
    (tmp_path / "client" / "config.yaml").write_text("API:\n  TLS:\n    UseTLS: true\n")
    monkeypatch.setenv("BACALHAU_API_TLS_INSECURE", "true")
    done = run("agent", "alive")
    assert done.exit_code == 0, done.output


def test_a_bad_config_option_is_refused_whatever_names_the_api(
    proxied: tuple[int, Path],
) -> None:
    for bad, said in (
        ("Foo.Bar=1", "Foo.Bar"),
        ("nonexistent.yaml", "nonexistent.yaml"),
        ("API.Port=abc", "API.Port"),
        ("2", "not of the form Key=Value"),
    ):
        done = run("agent", "alive", "-c", bad)
        assert done.exit_code != 0, (bad, done.output)
        assert said in done.stderr, (bad, done.stderr)


def test_c_with_a_number_on_a_run_command_is_v1_0_s_concurrency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACALHAU_DIR", str(tmp_path))
    done = run("docker", "run", "--dry-run", "-c", "3", "local/busybox:1.37", "--", "true")
    assert done.exit_code == 0, done.output
    assert "Count: 3" in done.stdout
    assert "Flag -c 3 is read as --concurrency 3" in done.stderr
