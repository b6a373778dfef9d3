"""Printing: ``--output table|json|yaml``, tables and times."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(
    default: str = "table",
    choices: Sequence[str] = ("table", "json", "yaml"),
    *,
    csv: bool = True,
) -> Callable[[F], F]:
    """``--output`` and the flags that shape it, as Bacalhau's commands take them:
    ``--pretty`` (indented JSON); for commands that print tables also ``csv``,
    ``--hide-header``, ``--wide`` (IDs and values in full) and ``--no-style`` (tables here are
    plain text already, so it changes nothing). Only ``--output`` reaches the command; the
    others are read by :func:`emit`, :func:`table` and :func:`cell_id`."""
    tabular = "table" in choices
    formats = [*choices, "csv"] if tabular and csv else list(choices)
    options = [
        click.option(
            "--output",
            "output",
            type=click.Choice(formats, case_sensitive=False),
            default=default,
            show_default=True,
            help="Output format.",
        ),
        _shaping_flag("--pretty", "Indent JSON output (YAML is always indented)."),
    ]
    if tabular:
        options += [
            _shaping_flag("--hide-header", "Print tables without their header."),
            _shaping_flag("--wide", "Print IDs and values in full, not shortened."),
            _shaping_flag("--no-style", "Print tables without styling (they have none here)."),
        ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _shaping_flag(name: str, help: str) -> Callable[[F], F]:
    return click.option(name, is_flag=True, expose_value=False, callback=_remember, help=help)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    ctx.meta[f"{_META}{param.name}"] = bool(value)


def next_page_hint(token: str, limit: int, *args: str) -> None:
    """The command that fetches the page after this one, as Bacalhau prints it (``bacalhau
    job list --limit 10 --next-token X``), on standard error: standard output holds the
    page, which a script may be parsing."""
    if not token:
        return
    ctx = click.get_current_context()
    words = [ctx.command_path, *args, f"--limit {limit}" if limit else "", f"--next-token {token}"]
    click.echo("\nTo fetch more records use:\n\t" + " ".join(w for w in words if w), err=True)


def wide() -> bool:
    """Whether ``--wide`` was given: IDs in full, and the columns a table keeps for it."""
    return _shaping("wide")


def _shaping(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(f"{_META}{name}"))


_META = "bacalhau.output."


def tabular(fmt: str) -> bool:
    """Whether ``--output`` asks for rows (a table or CSV) rather than a document."""
    return fmt.lower() in ("table", "csv")


def emit(data: Any, fmt: str) -> None:
    """Print ``data`` as JSON (one line; indented with ``--pretty``) or YAML."""
    if fmt.lower() == "json":
        if _shaping("pretty"):
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            click.echo(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True) -> None:
    """Print rows as a plain table, or as CSV when ``--output csv`` was asked for; without
    the header when ``header`` is false or ``--hide-header`` was given."""
    header = header and not _shaping("hide_header")
    ctx = click.get_current_context(silent=True)
    if ctx is not None and str(ctx.params.get("output", "")).lower() == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(headers)
        writer.writerows([[str(c) for c in row] for row in rows])
        click.echo(out.getvalue(), nl=False)
        return
    from tabulate import tabulate

    if header:
        click.echo(tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True))
    else:
        click.echo(tabulate(rows, tablefmt="plain", disable_numparse=True))


def cell_id(value: str) -> str:
    """An ID for a table cell: shortened (``j-1a2b3c4d``), or in full with ``--wide``."""
    from bacalhau.models import short_id

    return value if wide() else short_id(value)


def when(ns: int, *, clock: bool = False) -> str:
    """A Unix-ns time for humans (``HH:MM:SS`` today-style when ``clock``)."""
    if not ns:
        return ""
    moment = datetime.fromtimestamp(ns / 1e9).astimezone()
    if clock:
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M:%S")
