"""``bacalhau agent ...`` and ``bacalhau version``."""

from __future__ import annotations

import platform
from dataclasses import asdict

import click

import bacalhau
from bacalhau.cli._render import emit, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.errors import BacalhauError, Unavailable


@click.group("agent", cls=BacalhauGroup)
def agent_group() -> None:
    """Ask the node the CLI talks to about itself."""


@agent_group.command("alive")
@output_option(default="yaml", choices=("json", "yaml"))
@pass_state
def agent_alive(state: CliState, output: str) -> None:
    """Check that the node answers."""
    alive = state.client().agent_alive()
    emit({"Status": "OK" if alive else "NOT OK"}, output)


@agent_group.command("version")
@output_option(default="table")
@pass_state
def agent_version(state: CliState, output: str) -> None:
    """The node's version."""
    info = state.client().agent_version()
    if not tabular(output):
        emit(
            {
                "Major": info.major,
                "Minor": info.minor,
                "GitVersion": info.git_version,
                "GitCommit": info.git_commit,
                "BuildDate": info.build_date,
                "GOOS": info.goos,
                "GOARCH": info.goarch,
            },
            output,
        )
        return
    table(
        ("VERSION", "BUILD DATE", "OS", "ARCH"),
        [[info.git_version, info.build_date, info.goos, info.goarch]],
    )


@agent_group.command("config")
@output_option(default="yaml", choices=("json", "yaml"))
@pass_state
def agent_config(state: CliState, output: str) -> None:
    """The node's configuration (secrets redacted)."""
    emit(state.client().agent_config(), output)


@agent_group.command("node")
@output_option(default="yaml", choices=("json", "yaml"))
@pass_state
def agent_node(state: CliState, output: str) -> None:
    """The node's description."""
    emit(state.client().agent_node().to_dict(), output)


def client_version() -> dict[str, str]:
    from bacalhau.client import CLIENT_WIRE_VERSION

    return {
        "Version": f"v{bacalhau.__version__}",
        "APIVersion": CLIENT_WIRE_VERSION,
        "GOOS": platform.system().lower(),
        "Python": platform.python_version(),
    }


@click.command("version")
@click.option("--client", "client_only", is_flag=True, help="Only the client's version.")
@output_option()
@pass_state
def version(state: CliState, client_only: bool, output: str) -> None:
    """The versions of this client and of the node it talks to."""
    mine = client_version()
    server = None
    unreachable: BacalhauError | None = None
    if not client_only:
        try:
            server = state.client().agent_version()
        except Unavailable as exc:
            # Still say which client this is: that is often why someone asks.
            unreachable = exc
    if not tabular(output):
        data: dict[str, object] = {"ClientVersion": mine}
        if server is not None:
            data["ServerVersion"] = asdict(server)
        emit(data, output)
        if unreachable is not None:
            raise unreachable
        return
    headers = ["CLIENT"] if server is None else ["CLIENT", "SERVER"]
    row = [mine["Version"]] if server is None else [mine["Version"], server.git_version]
    table(headers, [row])
    if unreachable is not None:
        raise unreachable
