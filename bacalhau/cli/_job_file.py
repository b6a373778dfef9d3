"""Reading a job file as Bacalhau's CLI reads one: from a path or standard input, checked to
be text, and the template variables it is rendered with."""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import click

__all__ = ["read_spec", "template_variables"]


def read_spec(path: str | None) -> str:
    """The job file's text: ``path``, or standard input for '-' or no path (as Bacalhau
    reads a job piped in: ``cat job.yaml | bacalhau job run``)."""
    if path is None:
        if sys.stdin.isatty():
            raise click.UsageError("Missing argument 'FILE' (a job file, or '-' for stdin).")
        path = "-"
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="FILE") from None
    where = "standard input" if path == "-" else path
    if data.startswith(b"\0asm"):
        raise click.BadParameter(
            f"{where} is a WebAssembly module, not a job file: run it with `bacalhau wasm run`",
            param_hint="FILE",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{where} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}): a job "
            "file is YAML or JSON, saved as UTF-8",
            param_hint="FILE",
        ) from None


def template_variables(pairs: tuple[str, ...], env_pattern: str) -> dict[str, str]:
    """Template variables, read as Bacalhau's CLI reads them: environment variables whose
    names the regular expression ``env_pattern`` (-E) finds anywhere in them (``*``: all),
    then ``-V key=value`` pairs, which win. A -V value with one ``=`` is one pair (commas
    and all); with more, comma-separated pairs in CSV (pflag's ``StringToString``)."""
    variables: dict[str, str] = {}
    if env_pattern:
        pattern = ".*" if env_pattern == "*" else env_pattern
        try:
            wanted = re.compile(pattern)
        except re.error as exc:
            raise click.BadParameter(
                f"{env_pattern!r} is not a regular expression: {exc}", param_hint="-E"
            ) from None
        variables.update({k: v for k, v in os.environ.items() if wanted.search(k)})
    for pair in pairs:
        items = [pair.strip('"')] if pair.count("=") == 1 else next(csv.reader([pair]), [])
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"{item!r} is not key=value", param_hint="-V")
            variables[key.strip()] = value
    return variables
