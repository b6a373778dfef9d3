"""``bacalhau profile save|select|list|show|delete`` (Bacalhau v1.9): named connections to
clusters, kept in ``<data-dir>/profiles`` (see :mod:`bacalhau.cli._profiles`)."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from bacalhau.cli import _auth_cmd
from bacalhau.cli._profiles import Profile, endpoint_url
from bacalhau.cli._render import emit, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.config import go_duration_text
from bacalhau.errors import InvalidRequest, NotFound

#: Tokens this short are hidden whole by ``show`` (Bacalhau's threshold).
_SHORT_TOKEN = 8


@click.group("profile", cls=BacalhauGroup)
def profile_group() -> None:
    """Named connections to clusters: endpoint, credentials, timeout (client side).

    The profile in effect is --profile NAME, else BACALHAU_PROFILE, else the one chosen with
    `bacalhau profile select`. --api-host/--api-port, BACALHAU_API_HOST/BACALHAU_API_PORT and
    -c API.Host/API.Port override its endpoint; BACALHAU_API_KEY, or BACALHAU_API_USERNAME
    and BACALHAU_API_PASSWORD, its credentials.
    """


def _secret(value: str | None, what: str) -> str | None:
    """``-`` reads the value from standard input's first line (keeping it out of the shell's
    history and the process list)."""
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        raise InvalidRequest(f"no {what} on standard input", component="CLI")
    return line


@profile_group.command("save")
@click.argument("name")
@click.option("--endpoint", help="API endpoint: host:port or a URL (https://host:443).")
@click.option("--description", help="What the profile is for.")
@click.option("--timeout", help="Connect timeout, a Go duration (30s, 1m) [default: 30s].")
@click.option(
    "--insecure/--no-insecure",
    default=None,
    help="Accept any TLS certificate of an https endpoint (or no longer).",
)
@click.option(
    "--api-key",
    metavar="KEY|-",
    help="An API key, sent as Authorization: Bearer ('-' reads it from standard input).",
)
@click.option("--username", help="A username, sent with --password as Basic credentials.")
@click.option(
    "--password",
    metavar="PASSWORD|-",
    help="The username's password ('-' reads it from standard input; asked for on a terminal).",
)
@click.option("--no-auth", is_flag=True, help="Remove the profile's credentials.")
@click.option("--select", "select_after", is_flag=True, help="Make it the current profile.")
@pass_state
def profile_save(
    state: CliState,
    name: str,
    endpoint: str | None,
    description: str | None,
    timeout: str | None,
    insecure: bool | None,
    api_key: str | None,
    username: str | None,
    password: str | None,
    no_auth: bool,
    select_after: bool,
) -> None:
    """Create profile NAME or change what is given of it.

    The profile's file is written with mode 0600: it may hold an API key or password.
    """
    store = state.profiles()
    if store.exists(name):
        profile = store.load(name)
    elif not endpoint:
        raise InvalidRequest(
            "endpoint is required when creating a new profile",
            hint=f"bacalhau profile save {name} --endpoint HOST:PORT",
            details={"Field": "--endpoint"},
        )
    else:
        profile = Profile(endpoint=endpoint)
    given = sum(x is not None for x in (api_key, username)) + no_auth
    if given > 1:
        raise InvalidRequest(
            "give one of --api-key, --username (with --password) and --no-auth",
            component="CLI",
        )
    if password is not None and username is None:
        raise InvalidRequest("--password goes with --username", component="CLI")
    if endpoint:
        profile = replace(profile, endpoint=endpoint)
    if description is not None:
        profile = replace(profile, description=description)
    if timeout is not None:
        # Kept as a Go duration (a bare number of seconds gets its unit): Bacalhau's own CLI
        # reads the same file, and Go's durations need one.
        profile = replace(profile, timeout=go_duration_text("timeout", timeout))
    if insecure is not None:
        profile = replace(profile, insecure=insecure)
    if no_auth:
        profile = replace(profile, token="", username="", password="")
    if api_key is not None:
        key = _secret(api_key, "API key") or ""
        profile = replace(profile, token=key, username="", password="")
    if username is not None:
        secret = _secret(password, "password")
        if secret is None:
            if not _auth_cmd.stdin_is_terminal():
                raise InvalidRequest(
                    "--username needs --password (or --password - to read it from standard input)",
                    component="CLI",
                )
            secret = click.prompt("Password", hide_input=True, err=True)
        profile = replace(profile, token="", username=username, password=secret)
    store.save(name, profile.check())
    click.echo(f'Profile "{name}" saved')
    if select_after:
        store.select(name)
        click.echo(f'Switched to profile "{name}"')


@profile_group.command("select")
@click.argument("name")
@pass_state
def profile_select(state: CliState, name: str) -> None:
    """Make profile NAME the current one."""
    state.profiles().select(name)
    click.echo(f'Switched to profile "{name}"')


@profile_group.command("list")
@output_option(default="table")
@pass_state
def profile_list(state: CliState, output: str) -> None:
    """List the profiles; the current one is marked with *."""
    store = state.profiles()
    names = store.names()
    current = store.current()
    entries = []
    for name in names:
        profile = store.load(name)
        entries.append(
            {
                "current": "*" if name == current else "",
                "name": name,
                "endpoint": profile.endpoint,
                "auth": profile.auth_kind,
            }
        )
    if not tabular(output):
        emit(entries, output)
        return
    if not entries:
        click.echo("No profiles found")
        return
    table(
        ("CURRENT", "NAME", "ENDPOINT", "AUTH"),
        [[e["current"], e["name"], e["endpoint"], e["auth"]] for e in entries],
    )


@profile_group.command("show")
@click.argument("name", required=False)
@click.option("--show-token", is_flag=True, help="Show the API key or password in full.")
@pass_state
def profile_show(state: CliState, name: str | None, show_token: bool) -> None:
    """Show profile NAME, or the one in effect (--profile, BACALHAU_PROFILE, the current)."""
    store = state.profiles()
    if not name:
        name, _ = state.profile_name()
    if not name:
        raise NotFound(
            "no current profile set",
            hint="bacalhau profile select NAME, or name one: bacalhau profile show NAME",
            component="CLI",
        )
    profile = store.load(name)
    shown = f"{name} (current)" if store.current() == name else name
    auth = "none"
    if profile.token:
        auth = f"token ({profile.token if show_token else _redact(profile.token)})"
    elif profile.username:
        secret = profile.password if show_token else "****"
        auth = f"basic ({profile.username}, password {secret})"
    click.echo(f"Name:        {shown}")
    click.echo(f"Endpoint:    {profile.endpoint}")
    click.echo(f"Auth:        {auth}")
    if not endpoint_url(profile.endpoint).startswith("https://"):
        tls = "none (plain http)"
    else:
        tls = "insecure (any certificate)" if profile.insecure else "verified"
    click.echo(f"TLS:         {tls}")
    click.echo(f"Timeout:     {profile.timeout or '30s'}")
    if profile.description:
        click.echo(f"Description: {profile.description}")


def _redact(token: str) -> str:
    if len(token) <= _SHORT_TOKEN:
        return "****"
    return f"{token[:4]}****{token[-4:]}"


@profile_group.command("delete")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Delete the current profile without asking.")
@pass_state
def profile_delete(state: CliState, name: str, force: bool) -> None:
    """Delete profile NAME (asking first when it is the current one)."""
    store = state.profiles()
    if not store.exists(name):
        store.load(name)  # raises NotFound, listing the profiles
    if store.current() == name and not force:
        try:
            answer = click.prompt(
                f'Profile "{name}" is the current profile. Delete anyway? [y/N]',
                default="",
                show_default=False,
                err=True,
            )
        except click.Abort:
            # Standard input ended with no answer (a script, < /dev/null): say what would
            # delete it, rather than "Aborted!".
            raise InvalidRequest(
                f'profile "{name}" is the current profile: not deleted without a confirmation',
                hint=f"bacalhau profile delete {name} --force deletes it without asking",
                component="CLI",
            ) from None
        if answer.strip().lower() not in ("y", "yes"):
            click.echo("Deletion cancelled")
            return
    store.delete(name)
    click.echo(f'Profile "{name}" deleted')
