"""The root command: global flags, the shared client, and the one place where errors become
``Error: ...`` / ``Hint: ...`` lines and an exit code."""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any

import click

from bacalhau.errors import BacalhauError

if TYPE_CHECKING:
    from bacalhau.client import Client

# The client (and aiohttp under it) is imported only by commands that talk to a node, so
# offline commands (--help, --dry-run, version --client, ca) start fast.
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 1234


class CliState:
    """What every command shares: the API address and a lazily opened client."""

    def __init__(self, api_host: str, api_port: int) -> None:
        self.api_host = api_host
        self.api_port = api_port
        self._client: Client | None = None

    @property
    def api_url(self) -> str:
        host = self.api_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    def client(self) -> Client:
        if self._client is None:
            from bacalhau.client import Client

            self._client = Client(self.api_url)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_state = click.make_pass_decorator(CliState)


class CliError(click.ClickException):
    """A :class:`BacalhauError` on its way to the terminal (exit code 1)."""

    exit_code = 1

    def __init__(self, error: BacalhauError) -> None:
        super().__init__(error.message)
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.error.message}", err=True)
        field = self.error.details.get("Field")
        if field:
            click.echo(f"Field: {field}", err=True)
        if self.error.hint:
            click.echo(f"Hint: {self.error.hint}", err=True)


class BacalhauGroup(click.Group):
    """Translates every :class:`BacalhauError` raised below it, once."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BacalhauError as err:
            raise CliError(err) from None
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as other command-line tools do.
            # Whatever is still buffered for stdout has nowhere to go; point stdout at
            # /dev/null so the interpreter's final flush does not complain again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(141)  # 128 + SIGPIPE, what a shell reports for a reader that left
        except OSError as err:
            # Local file trouble (an unwritable output folder, a full disk): say what and where.
            raise CliError(
                BacalhauError(
                    f"{err.strerror or err}: {err.filename}" if err.filename else str(err),
                    hint="check the path and its permissions",
                )
            ) from None


@click.group(
    cls=BacalhauGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--api-host",
    envvar="BACALHAU_API_HOST",
    default=DEFAULT_API_HOST,
    show_default=True,
    show_envvar=True,
    help="Host of the node's REST API.",
)
@click.option(
    "--api-port",
    envvar="BACALHAU_API_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_API_PORT,
    show_default=True,
    show_envvar=True,
    help="Port of the node's REST API.",
)
@click.pass_context
def cli(ctx: click.Context, api_host: str, api_port: int) -> None:
    """Run Docker and WebAssembly jobs on a compute-over-data network (Bacalhau v1 compatible)."""
    state = CliState(api_host, api_port)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Entry point of the ``bacalhau`` executable."""
    cli.main(prog_name="bacalhau")
