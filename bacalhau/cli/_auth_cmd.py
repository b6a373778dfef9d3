"""``bacalhau auth ...``: hash a password for ``API.Auth.Users``, and say which credentials
the CLI sends and who the API takes them for."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from bacalhau.cli._render import emit
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.errors import InvalidRequest, NotFound, Unauthorized

#: Bacalhau's cost (Go's bcrypt.DefaultCost): about 60 ms a check on a current core.
DEFAULT_COST = 10
#: bcrypt reads the first 72 bytes of a password only: a longer one is refused, not cut.
MAX_PASSWORD_BYTES = 72
_ENV = ("BACALHAU_API_KEY", "BACALHAU_API_USERNAME", "BACALHAU_API_PASSWORD")


def stdin_is_terminal() -> bool:
    """Whether a person types on standard input (then passwords are asked for)."""
    return sys.stdin.isatty()


@click.group("auth", cls=BacalhauGroup)
def auth_group() -> None:
    """Authentication: hash passwords for the API's users, show who the API takes you for."""


@auth_group.command("hash-password")
@click.option(
    "--cost",
    type=click.IntRange(4, 16),
    default=DEFAULT_COST,
    show_default=True,
    help="bcrypt's cost: each step doubles the time a check takes.",
)
def hash_password(cost: int) -> None:
    """Print the bcrypt hash of a password, for a user's Password in API.Auth.Users.

    The password is read from standard input (its first line, trimmed); on a terminal it is
    asked for twice, without echo. Only the hash goes to standard output:
    `HASH=$(bacalhau auth hash-password)`.
    """
    import bcrypt

    if stdin_is_terminal():
        password = click.prompt(
            "Enter password",
            hide_input=True,
            confirmation_prompt="Confirm password",
            err=True,
        )
    else:
        password = sys.stdin.readline()
    password = password.strip()
    if not password:
        raise InvalidRequest("password cannot be empty", component="CLI")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidRequest(
            f"the password is longer than bcrypt's {MAX_PASSWORD_BYTES} bytes",
            hint="choose a shorter one, or give the user an API key instead",
            component="CLI",
        )
    click.echo(bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode())


@auth_group.command("info")
@click.option(
    "--output",
    type=click.Choice(["text", "json", "yaml"], case_sensitive=False),
    default="text",
    show_default=True,
    help="Output format.",
)
@pass_state
def auth_info(state: CliState, output: str) -> None:
    """Show the API the CLI talks to, the credentials it sends (and where they come from),
    and who the API takes them for, with their capabilities."""
    found = state.connection_profile()
    credentials = state.credentials
    info: dict[str, Any] = {
        "Endpoint": state.api_url,
        "Profile": found[0] if found else "",
        "Environment": {name: "Set" if os.environ.get(name) else "Not Set" for name in _ENV},
        "Credentials": {
            "Sent": credentials.describe(),
            "From": credentials.source,
        },
    }
    refused: Unauthorized | None = None
    client = state.client()
    try:
        status = client.auth_status()
        server: dict[str, Any] = {
            "AuthRequired": status.auth_required,
            "Methods": list(status.methods),
        }
        if status.user is not None:
            server["User"] = {
                "Name": status.user.name,
                "Username": status.user.username,
                "Alias": status.user.alias,
                "Method": status.user.method,
                "Capabilities": list(status.user.capabilities),
            }
    except Unauthorized as err:
        refused = err
        server = {"AuthRequired": True, "Refused": err.details.get("reason", err.message)}
    except NotFound:
        # Bacalhau's own server says no more than whether it offers older methods.
        server = {"WhoAmI": "not served", "LegacyMethods": _legacy_methods(client)}
    info["Server"] = server
    if output.lower() == "text":
        _print_text(info)
    else:
        emit(info, output)
    if refused is not None:
        raise refused


def _legacy_methods(client: Any) -> dict[str, str]:
    try:
        methods: dict[str, str] = client.auth_methods()
    except NotFound:
        return {}
    return methods


def _print_text(info: dict[str, Any]) -> None:
    echo = click.echo
    echo(f"Target environment: {info['Endpoint']}")
    echo(f"Profile: {info['Profile'] or 'none'}")
    echo("")
    echo("Environment Variables:")
    for name, label in zip(_ENV, ("API Key", "Username", "Password"), strict=True):
        echo(f"{label}: {info['Environment'][name]}")
    echo("")
    creds = info["Credentials"]
    sent = creds["Sent"] + (f" (from {creds['From']})" if creds["From"] else "")
    echo(f"Credentials sent: {sent}")
    server = info["Server"]
    if "WhoAmI" in server:
        legacy = server["LegacyMethods"]
        echo(
            "Server: does not say who you are (a Bacalhau node without our whoami endpoint); "
            + (
                "its authentication methods: " + ", ".join(f"{n} ({t})" for n, t in legacy.items())
                if legacy
                else "it offers users (username/password, API keys) or SSO, or is open"
            )
        )
        return
    if not server["AuthRequired"]:
        echo("Server: open, no authentication required")
        return
    methods = ", ".join(server.get("Methods") or ()) or "none"
    echo(f"Server: requires authentication ({methods})")
    if "Refused" in server:
        echo(f"Authenticated: no, the credentials were refused: {server['Refused']}")
    elif "User" in server:
        user = server["User"]
        who = user["Name"]
        if user["Username"] and user["Username"] != who:
            who += f" (username {user['Username']})"
        echo(f"Authenticated as: {who}, by {user['Method']}")
        echo(f"Capabilities: {', '.join(user['Capabilities'])}")
    else:
        echo(
            "Authenticated: no credentials sent (set BACALHAU_API_KEY, or "
            "BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD, or use a profile)"
        )
