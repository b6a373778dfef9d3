"""Printing: ``--output table|json|yaml``, tables and times."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(
    default: str = "table", choices: Sequence[str] = ("table", "json", "yaml")
) -> Callable[[F], F]:
    return click.option(
        "--output",
        "output",
        type=click.Choice(list(choices), case_sensitive=False),
        default=default,
        show_default=True,
        help="Output format.",
    )


def emit(data: Any, fmt: str) -> None:
    """Print ``data`` as JSON or YAML."""
    if fmt.lower() == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True) -> None:
    from tabulate import tabulate

    if header:
        click.echo(tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True))
    else:
        click.echo(tabulate(rows, tablefmt="plain", disable_numparse=True))


def when(ns: int, *, clock: bool = False) -> str:
    """A Unix-ns time for humans (``HH:MM:SS`` today-style when ``clock``)."""
    if not ns:
        return ""
    moment = datetime.fromtimestamp(ns / 1e9).astimezone()
    if clock:
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M:%S")
