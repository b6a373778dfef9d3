"""Bacalhau's older command spellings: ``list``, ``describe``, ``create``, ``cancel``, ``get``,
``logs``, ``validate``, ``id``.

Bacalhau moved them under ``job`` and ``agent`` in v1.0, turned them into stubs in v1.4 and
removed them in v1.7; scripts and documents still use them. Here each one works as the command
it became, takes the same options, and says on standard error (never on standard output, which
scripts read) which spelling replaces it. ``list`` and ``describe`` also take the options they
had in v1.0-1.3 (``list -n 5 --id-filter ID --reverse=false``, ``describe --json``),
translated into the new command's.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
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


def _tags(values: tuple[str, ...]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def _list_options(kwargs: dict[str, Any]) -> bool:
    """v1.0-1.3's ``list`` options, as ``job list`` takes them."""
    number, reverse, sort_by = kwargs.pop("number"), kwargs.pop("reverse"), kwargs.pop("sort_by")
    include, exclude = _tags(kwargs.pop("include_tag")), _tags(kwargs.pop("exclude_tag"))
    kwargs.pop("all")  # every job was always listed here
    if number is not None:
        kwargs["limit"] = number
    if reverse is not None:
        kwargs["order_reversed"] = reverse
    if sort_by:
        kwargs["order_by"] = sort_by
    # Tags were annotations; a job's labels hold them now.
    selectors = [kwargs["labels"], *include, *(f"!{t}" for t in exclude)]
    kwargs["labels"] = ",".join(s for s in selectors if s)
    return False


def _describe_options(kwargs: dict[str, Any]) -> bool:
    """v1.0-1.3's ``describe`` options, as ``job describe`` takes them; ``--spec`` prints
    the job's spec alone (and says it was handled)."""
    kwargs.pop("include_events")  # the history is always shown
    as_json = kwargs.pop("json")
    if as_json:
        kwargs["output"] = "json"
    if not kwargs.pop("spec"):
        return False
    from bacalhau.cli._render import emit
    from bacalhau.cli._root import CliState

    state = click.get_current_context().find_object(CliState)
    assert state is not None
    details = state.client().get_job_raw(kwargs["job_id"], version=kwargs.get("version", 0))
    emit(details.get("Job", details), "json" if as_json else "yaml")
    return True


#: Options of v1.0-1.3 that the new command lacks, and how to translate them.
#: A translation returns True when it has done the command's work itself.
_OLD_OPTIONS: dict[str, tuple[list[click.Option], Callable[[dict[str, Any]], bool]]] = {
    "list": (
        [
            click.Option(["-n", "--number"], type=click.IntRange(min=0), help="As --limit."),
            click.Option(
                ["--reverse"],
                type=click.BOOL,
                is_flag=False,
                flag_value=True,
                help="Newest first (--reverse=false: oldest first), as --order-reversed.",
            ),
            click.Option(
                ["--sort-by"],
                type=click.Choice(["id", "created_at"], case_sensitive=False),
                help="As --order-by.",
            ),
            click.Option(["--include-tag"], multiple=True, help="Only jobs with this label."),
            click.Option(["--exclude-tag"], multiple=True, help="No jobs with this label."),
            click.Option(["--all"], is_flag=True, help="Accepted: every job is listed."),
        ],
        _list_options,
    ),
    "describe": (
        [
            click.Option(["--json"], is_flag=True, help="As --output json."),
            click.Option(["--spec"], is_flag=True, help="Print the job's spec alone."),
            click.Option(["--include-events"], is_flag=True, help="Accepted: always shown."),
        ],
        _describe_options,
    ),
}


def _alias(old: str, target: click.Command, spelling: str) -> click.Command:
    alias = copy.copy(target)
    alias.name = old
    alias.help = f"Deprecated spelling of `{spelling}`. " + (target.help or "")
    alias.short_help = f"Deprecated: use `{spelling}`."
    callback = target.callback
    assert callback is not None
    extra, translate = _OLD_OPTIONS.get(old, ([], None))
    alias.params = [*target.params, *extra]

    @functools.wraps(callback)
    def notice_then_run(*args: Any, **kwargs: Any) -> Any:
        click.echo(f"Command '{old}' is deprecated: use '{spelling}'.", err=True)
        if translate is not None and translate(kwargs):
            return None
        return callback(*args, **kwargs)

    alias.callback = notice_then_run
    return alias
