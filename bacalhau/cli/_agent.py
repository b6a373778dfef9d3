"""``bacalhau agent ...`` and ``bacalhau version``."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import click

import bacalhau
from bacalhau.cli._render import emit, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.errors import BacalhauError, Unavailable

if TYPE_CHECKING:
    from bacalhau.client import VersionInfo


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
@output_option(default="text", choices=("text", "table", "json", "yaml"))
@pass_state
def agent_version(state: CliState, output: str) -> None:
    """The node's version (as Bacalhau prints it: ``Bacalhau vX``, ``BuildDate``,
    ``GitCommit``; ``--output table`` a row)."""
    info = state.client().agent_version()
    if output == "text":
        click.echo(
            f"Bacalhau {info.git_version}\nBuildDate {info.build_date}\nGitCommit {info.git_commit}"
        )
        return
    if not tabular(output):
        emit(
            _server_version(info),
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
    """The node's description: its NodeInfo (NodeID, NodeType, Labels, ...), as Bacalhau
    prints it; ``bacalhau node describe`` adds the requester's view of it."""
    emit(state.client().agent_node().info.to_dict(), output)


def client_version() -> dict[str, str]:
    """This client's version, in the keys of Bacalhau's BuildVersionInfo (and ours)."""
    from bacalhau.client import CLIENT_WIRE_VERSION

    major, _, rest = bacalhau.__version__.partition(".")
    return {
        "Major": major,
        "Minor": rest.partition(".")[0],
        "GitVersion": f"v{bacalhau.__version__}",
        "GitCommit": "",
        "GOOS": platform.system().lower(),
        "GOARCH": _ARCHES.get(platform.machine().lower(), platform.machine().lower()),
        "APIVersion": CLIENT_WIRE_VERSION,
        "Python": platform.python_version(),
    }


#: ``platform.machine()`` -> Go's GOARCH.
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _server_version(info: VersionInfo) -> dict[str, str]:
    return {
        "Major": info.major,
        "Minor": info.minor,
        "GitVersion": info.git_version,
        "GitCommit": info.git_commit,
        "BuildDate": info.build_date,
        "GOOS": info.goos,
        "GOARCH": info.goarch,
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
    if unreachable is not None:
        # As Bacalhau's: the client's version still answers the question, with a warning.
        click.echo(f"Warning: could not get the server's version: {unreachable.message}", err=True)
    if not tabular(output):
        # Bacalhau's keys (cmd/util/version.go), so scripts reading them work.
        data: dict[str, object] = {"clientVersion": mine}
        if server is not None:
            data["serverVersion"] = _server_version(server)
        emit(data, output)
        return
    if server is None:
        table(["CLIENT"], [[mine["GitVersion"]]])
    else:
        row = [mine["GitVersion"], server.git_version, ""]
        table(["CLIENT", "SERVER", "UPDATE MESSAGE"], [row])
