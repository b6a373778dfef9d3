"""Bacalhau's older command spellings: ``list``, ``describe``, ``create``, ``cancel``, ``get``,
``logs``, ``validate``, ``id``.

Bacalhau moved them under ``job`` and ``agent`` in v1.0, turned them into stubs in v1.4 and
removed them in v1.7; scripts and documents still use them. Here each one works as the command
it became, takes the same options, and says on standard error (never on standard output, which
scripts read) which spelling replaces it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import click

__all__ = ["LEGACY_SPELLINGS", "legacy_commands"]

#: Old spelling -> the command path it became.
LEGACY_SPELLINGS = {
    "list": ("job", "list"),
    "describe": ("job", "describe"),
    "create": ("job", "run"),
    "cancel": ("job", "stop"),
    "get": ("job", "get"),
    "logs": ("job", "logs"),
    "validate": ("job", "validate"),
    "id": ("agent", "node"),
}


def legacy_commands(root: click.Group) -> list[click.Command]:
    """One command per old spelling, each a copy of the command it became under ``root``."""
    commands = []
    for old, path in LEGACY_SPELLINGS.items():
        target = _find(root, path)
        commands.append(_alias(old, target, "bacalhau " + " ".join(path)))
    return commands


def _find(root: click.Group, path: tuple[str, ...]) -> click.Command:
    command: click.Command = root
    for name in path:
        assert isinstance(command, click.Group)
        found = command.commands.get(name)
        if found is None:
            raise LookupError(f"no command {' '.join(path)!r} to alias")
        command = found
    return command


def _alias(old: str, target: click.Command, spelling: str) -> click.Command:
    alias = copy.copy(target)
    alias.name = old
    alias.help = f"Deprecated spelling of `{spelling}`. " + (target.help or "")
    alias.short_help = f"Deprecated: use `{spelling}`."
    callback = target.callback
    assert callback is not None

    @functools.wraps(callback)
    def notice_then_run(*args: Any, **kwargs: Any) -> Any:
        click.echo(f"Command '{old}' is deprecated: use '{spelling}'.", err=True)
        return callback(*args, **kwargs)

    alias.callback = notice_then_run
    return alias
