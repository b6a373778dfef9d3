"""The root command: global flags, the shared client, and the one place where errors become
``Error: ...`` / ``Hint: ...`` lines and an exit code."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from bacalhau.cli._args import PERSISTENT_OPTIONS, Persistent, normalize_args
from bacalhau.cli._client_config import (
    LOG_LEVELS,
    LOG_MODES,
    ClientConfig,
    client_config,
    data_dir,
    setup_logging,
)
from bacalhau.cli._completion import complete_config_value
from bacalhau.cli._profiles import Profile, ProfileStore
from bacalhau.errors import BacalhauError, NotFound

if TYPE_CHECKING:
    from bacalhau.client import Client, Credentials, DataClient

_log = logging.getLogger("bacalhau.cli")

# The client (and aiohttp under it) is imported only by commands that talk to a node, so
# offline commands (--help, --dry-run, version --client, ca) start fast.
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 1234


class CliState:
    """What every command shares: where the node's API is, the credentials to send, and a
    lazily opened client.

    The address comes from, first to last: ``--api-host``/``--api-port`` (written anywhere on
    the command line), ``BACALHAU_API_HOST``/``BACALHAU_API_PORT``, ``API.Host``/``API.Port``
    given with ``-c``; when none of them names the API, the profile in effect (``--profile``,
    ``BACALHAU_PROFILE``, else the current one: see :mod:`bacalhau.cli._profiles`); then
    ``API.Host``/``API.Port`` of ``<data-dir>/config.yaml``, then the default. Credentials:
    ``BACALHAU_API_KEY``, or ``BACALHAU_API_USERNAME`` and ``BACALHAU_API_PASSWORD``, else the
    profile's when its endpoint is the one in use, else none.
    """

    def __init__(self, persistent: Persistent) -> None:
        self.persistent = persistent
        self._client: Client | None = None
        self._configured: ClientConfig | None = None
        self._explicit: ClientConfig | None = None
        self._profile: tuple[str, Profile] | bool | None = False  # False: not looked up yet
        #: Where job names are looked up (a command's ``--namespace``; "": ``default``).
        self.namespace = ""

    @property
    def api_host(self) -> str:
        return (
            self.persistent.last("api_host")
            or os.environ.get("BACALHAU_API_HOST")
            or self._config().api_host
            or DEFAULT_API_HOST
        )

    @property
    def api_port(self) -> int:
        flag = self.persistent.last("api_port")
        if flag is not None:
            return _port(flag, "--api-port")
        env = os.environ.get("BACALHAU_API_PORT")
        if env:
            return _port(env, "BACALHAU_API_PORT")
        return self._config().api_port or DEFAULT_API_PORT

    def _config(self) -> ClientConfig:
        if self._configured is None:
            self._configured = client_config(self.persistent)
        return self._configured

    def _address_given(self) -> bool:
        """Whether flags, variables or ``-c`` name the API (they outrank a profile)."""
        if self.persistent.last("api_host") or self.persistent.last("api_port") is not None:
            return True
        if os.environ.get("BACALHAU_API_HOST") or os.environ.get("BACALHAU_API_PORT"):
            return True
        self._config()  # the whole configuration is checked first, errors naming the file
        if self._explicit is None:
            self._explicit = client_config(self.persistent, data_dir_file=False)
        return self._explicit.api_host is not None or self._explicit.api_port is not None

    @property
    def data_dir(self) -> Path:
        return data_dir(self.persistent)

    def profiles(self) -> ProfileStore:
        """The profiles of this client's data dir."""
        return ProfileStore(self.data_dir)

    def profile_name(self) -> tuple[str | None, bool]:
        """The profile asked for: ``--profile``, else ``BACALHAU_PROFILE`` (explicitly), else
        the current one; and whether it was asked for explicitly."""
        asked = self.persistent.last("profile") or os.environ.get("BACALHAU_PROFILE")
        if asked:
            return asked, True
        return self.profiles().current(), False

    def profile(self) -> tuple[str, Profile] | None:
        """The profile in effect and its name (None: no profile). One named with
        ``--profile`` or ``BACALHAU_PROFILE`` must exist; a ``current`` link to a profile
        gone is ignored, with a warning."""
        if self._profile is False:
            name, explicit = self.profile_name()
            found: tuple[str, Profile] | None = None
            if name:
                try:
                    found = (name, self.profiles().load(name))
                except NotFound:
                    if explicit:
                        raise
                    _log.warning(
                        "the current profile %r does not exist: ignored (bacalhau profile "
                        "select NAME, or delete %s)",
                        name,
                        self.profiles().dir / "current",
                    )
            self._profile = found
        assert self._profile is not True
        return self._profile or None

    def connection_profile(self) -> tuple[str, Profile] | None:
        """The profile whose endpoint (and credentials) are in use: the profile in effect,
        unless flags, variables or ``-c`` name the API."""
        return None if self._address_given() else self.profile()

    @property
    def api_url(self) -> str:
        found = self.connection_profile()
        if found is not None:
            return found[1].url
        from bacalhau.client._session import api_url

        if self.persistent.last("api_host"):
            source = "--api-host"
        elif os.environ.get("BACALHAU_API_HOST"):
            source = "BACALHAU_API_HOST"
        else:
            source = "API.Host"
        return api_url(
            self.api_host,
            self.api_port,
            https=bool(os.environ.get("BACALHAU_HTTPS")) or self._config().use_tls,
            source=source,
        )

    @property
    def credentials(self) -> Credentials:
        """What the client sends: the environment's credentials, else those of the profile
        whose endpoint is in use (a profile's credentials never go to another address)."""
        from bacalhau.client import Credentials

        from_env = Credentials.from_env()
        if from_env:
            return from_env
        found = self.connection_profile()
        if found is not None:
            name, profile = found
            return profile.credentials(name) or Credentials.none()
        return Credentials.none()

    def _client_options(self) -> dict[str, Any]:
        # The configuration is checked whatever names the API (a bad -c is an error even
        # when BACALHAU_API_HOST is set), and says how to check an https API's certificate.
        config = self._config()
        options: dict[str, Any] = {"credentials": self.credentials}
        if self.namespace:
            options["namespace"] = self.namespace
        if config.insecure_tls:
            options["verify_tls"] = False
        elif config.ca_file:
            options["verify_tls"] = _ca_file(config.ca_file)
        found = self.connection_profile()
        if found is not None:
            options["connect_timeout"] = found[1].timeout_seconds
            if found[1].insecure:
                options["verify_tls"] = False
        return options

    def client(self) -> Client:
        if self._client is None:
            from bacalhau.client import Client

            self._client = Client(self.api_url, **self._client_options())
        return self._client

    def data_client(self) -> DataClient:
        """A new client of the data API (``bacalhau data``), closed by the caller."""
        from bacalhau.client import DataClient

        return DataClient(self.api_url, **self._client_options())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _ca_file(path: str) -> str:
    """``API.TLS.CAFile``, which must be a readable file (checked before any request, so
    that the error names the key rather than a TLS failure)."""
    found = Path(path).expanduser()
    if not found.is_file():
        from bacalhau.errors import InvalidRequest

        raise InvalidRequest(
            f"API.TLS.CAFile {path!r} is not a file",
            hint="give the PEM file of the certificate authority that signed the API's "
            "certificate, or remove API.TLS.CAFile",
            details={"Field": "API.TLS.CAFile"},
        )
    return str(found)


def _port(value: str, where: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise click.BadParameter(f"{value!r} is not a port (1-65535)", param_hint=f"'{where}'")
    return port


pass_state = click.make_pass_decorator(CliState)


def _set_namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_object(CliState).namespace = value  # type: ignore[union-attr]


#: ``--namespace`` of the commands that take a job: where its name is looked up, as
#: Bacalhau's job commands take it.
namespace_option = click.option(
    "--namespace",
    expose_value=False,
    callback=_set_namespace,
    help="The namespace a job name is looked up in [default: default].",
)


def _require_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        # Refused here, before any request: an empty ID would address every job, not one.
        raise click.BadParameter("a job ID (or name) is required", ctx=ctx, param=param)
    return value


#: The ``JOB_ID`` argument of the job commands: a job's ID, unique ID prefix or name.
job_id_argument = click.argument("job_id", callback=_require_id)


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
    """Every group of the CLI: reads command lines as Bacalhau's users write them (see
    :mod:`bacalhau.cli._args`), and translates every :class:`BacalhauError` raised below it,
    once."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        found = persistent_options(ctx)
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, click.Group):
            # Persistent options written between a group and its subcommand (``job
            # --api-port 1 list``) would stop click at the group: take them out here.
            rest = _leading_persistent(rest, found)
        elif command is not None:
            rest = normalize_args(command, rest, found)
            if name in _SERVES and ctx.parent is None:
                # The root's options written before `serve` are the node's, as Bacalhau's
                # persistent flags are (`bacalhau --data-dir X -c K=V serve`), ahead of its
                # own so that those win. A node's logging is its configuration's
                # (Logging.Level/Mode): the root's deprecated flags become those settings.
                rest = _node_settings(found, command) + rest + _logging_settings(found)
            elif not _SERVES.intersection([*ctx.command_path.split()[1:], name or ""]):
                setup_logging(found)  # every persistent option is known now
        return name, command, rest

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # A group alone shows its help, as cobra's does: on stdout, exit 0 (click's own
            # exits 2, as for a usage error).
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)  # the root translates errors, once
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


def persistent_options(ctx: click.Context) -> Persistent:
    """The persistent options of this command line (shared by every context in it)."""
    found = ctx.meta.get(_PERSISTENT)
    if found is None:
        found = ctx.meta[_PERSISTENT] = Persistent()
    assert isinstance(found, Persistent)
    return found


_PERSISTENT = "bacalhau.persistent"
#: Commands that run nodes and set their logging up themselves.
_SERVES = frozenset({"serve", "devstack"})


def _node_settings(found: Persistent, command: click.Command) -> list[str]:
    """The root's ``--data-dir``, ``--api-host``, ``--api-port`` and ``-c`` values as
    options of ``command`` (those it declares)."""
    own = {opt for p in command.params for opt in p.opts}
    out: list[str] = []
    for key, flag in (
        ("data_dir", "--data-dir"),
        ("api_host", "--api-host"),
        ("api_port", "--api-port"),
    ):
        value = found.last(key)
        if value not in (None, "") and flag in own:
            out += [flag, str(value)]
    if "--config" in own:
        for value in found.get("config", []):
            out += ["--config", value]
    return out


def _logging_settings(found: Persistent) -> list[str]:
    out: list[str] = []
    for key, setting in (("log_level", "Logging.Level"), ("log_mode", "Logging.Mode")):
        value = found.last(key)
        if value:
            out += ["-c", f"{setting}={value}"]
    return out


def _leading_persistent(args: list[str], found: Persistent) -> list[str]:
    """``args`` without the persistent options that come before the subcommand's name."""
    end = 0
    while end < len(args) and args[end].startswith("-") and args[end] != "--":
        name = args[end].partition("=")[0]
        if name not in PERSISTENT_OPTIONS:
            return args  # an option of the group itself: click reads it
        end += 1 if "=" in args[end] else 2
    if end == 0:
        return args
    return normalize_args(click.Command("-"), args[:end], found) + args[end:]


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A root option's value, kept with those written after a subcommand."""
    if value is None or value == ():
        return
    # The root's own options are parsed before any subcommand's: those written after a
    # subcommand come later and win (``config`` values add up, in order).
    values = list(value) if isinstance(value, tuple) else [str(value)]
    persistent_options(ctx).setdefault(param.name or "", []).extend(values)


@click.group(
    cls=BacalhauGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--api-host",
    expose_value=False,
    callback=_keep,
    help=f"Host of the node's REST API [env: BACALHAU_API_HOST; default: {DEFAULT_API_HOST}].",
)
@click.option(
    "--api-port",
    type=click.IntRange(1, 65535),
    expose_value=False,
    callback=_keep,
    help=f"Port of the node's REST API [env: BACALHAU_API_PORT; default: {DEFAULT_API_PORT}].",
)
@click.option(
    "-c",
    "--config",
    multiple=True,
    expose_value=False,
    callback=_keep,
    shell_complete=complete_config_value,
    metavar="FILE|KEY=VALUE",
    help="A config file (.yaml, .yml, .json) or one Key=Value setting; repeatable, later wins. "
    "Files given here replace <data-dir>/config.yaml.",
)
@click.option(
    "--data-dir",
    expose_value=False,
    callback=_keep,
    help="Where this client's config.yaml is [env: BACALHAU_DIR; default: ~/.bacalhau].",
)
@click.option("--repo", "data_dir", expose_value=False, callback=_keep, hidden=True)
@click.option(
    "--profile",
    expose_value=False,
    callback=_keep,
    metavar="NAME",
    help="The client profile to use: its endpoint and credentials "
    "[env: BACALHAU_PROFILE; default: the current one, see `bacalhau profile`].",
)
@click.option(
    "--log-level",
    expose_value=False,
    callback=_keep,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="How much the client logs on standard error [default: warn].",
)
@click.option(
    "--log-mode",
    expose_value=False,
    callback=_keep,
    type=click.Choice(LOG_MODES, case_sensitive=False),
    help="How the client's log lines look [default: default].",
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run Docker and WebAssembly jobs on a compute-over-data network (Bacalhau v1 compatible).

    The root's options may also be written after any subcommand, as Bacalhau's users do:
    `bacalhau job list --api-port 8080`.

    An API with users takes credentials from BACALHAU_API_KEY (an API key), or
    BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD, or from the profile in use.
    """
    state = CliState(persistent_options(ctx))
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Entry point of the ``bacalhau`` executable."""
    # Host names resolve as everything else on this machine resolves them (getaddrinfo:
    # /etc/hosts, nsswitch), not by gRPC's own DNS client, which asks the DNS servers first
    # and, when one does not answer, times out on names /etc/hosts holds. Set before any
    # channel exists; an operator's own choice stands.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
    cli.main(prog_name="bacalhau")
