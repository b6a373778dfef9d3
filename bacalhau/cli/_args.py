"""Command lines as Bacalhau's users type them (cobra's habits), made into what click parses.

Bacalhau's CLI is built with cobra, which differs from click in three ways its users rely on:

* **Persistent flags.** ``--api-host``, ``--api-port``, ``-c/--config``, ``--data-dir`` (and
  the deprecated ``--repo``), ``--log-level``, ``--log-mode`` and ``--profile`` belong to the
  root command but may be written after any subcommand: ``bacalhau job list --api-port
  8080``. Click takes an option only where it is declared, so they are taken out of a
  subcommand's arguments here (unless that command declares the option itself, as ``serve``
  does) and kept for the root.
* **Boolean flags with a value.** Cobra reads ``--wait=false`` and ``--id-only=true``; click
  refuses a value for a flag. ``--flag=true`` becomes ``--flag``; ``--flag=false`` becomes the
  flag's ``--no-`` form when it has one, or nothing (every such flag defaults to false, except
  those with a ``--no-`` form).
* **``job logs --tail`` is a flag in Bacalhau** (start at the end of the log) and a count of
  lines here. A bare ``--tail``/``-t`` (not followed by a number) asks for the last
  :data:`BARE_TAIL_LINES` lines.

Everything after ``--`` is left alone: it is the job's own command line.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from bacalhau.models import TAIL_FLAG_LINES

__all__ = ["BARE_TAIL_LINES", "PERSISTENT_OPTIONS", "Persistent", "normalize_args"]

#: Root options a user may write after any subcommand: spelling -> where the value is kept.
PERSISTENT_OPTIONS = {
    "--api-host": "api_host",
    "--api-port": "api_port",
    "-c": "config",
    "--config": "config",
    "--data-dir": "data_dir",
    "--repo": "data_dir",
    "--log-level": "log_level",
    "--log-mode": "log_mode",
    "--profile": "profile",
}
#: The options among those that may be given more than once (each value is kept, in order).
_REPEATABLE = frozenset({"config"})

#: Lines a bare ``--tail`` shows (see :data:`bacalhau.models.TAIL_FLAG_LINES`).
BARE_TAIL_LINES = TAIL_FLAG_LINES
_TAIL_OPTIONS = frozenset({"--tail", "-t"})

_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})


class Persistent(dict[str, list[str]]):
    """The persistent options found on a command line, by destination, in the order given."""

    def last(self, name: str) -> str | None:
        values = self.get(name)
        return values[-1] if values else None


def normalize_args(command: click.Command, args: Sequence[str], found: Persistent) -> list[str]:
    """``args`` (what follows ``command``'s name) as click should read them; persistent
    options the command does not declare itself are moved to ``found``."""
    own = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    flags = _boolean_flags(command)
    takes_tail = any(opt in own for opt in _TAIL_OPTIONS)
    if takes_tail:
        args = _ungrouped_tail(args, flags)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if name == "-c" and "--concurrency" in own and _is_count(args, i + 1) and not eq:
            # Bacalhau v1.0-v1.3's run commands: -c was --concurrency (later --config,
            # where a bare number is never a setting nor, but for a file so named, a file).
            click.echo(f"Flag -c {args[i + 1]} is read as --concurrency {args[i + 1]}", err=True)
            out.extend(("--concurrency", args[i + 1]))
            i += 2
            continue
        if name in PERSISTENT_OPTIONS and name not in own:
            if not eq:
                if i + 1 >= len(args):
                    raise click.UsageError(f"Option '{name}' requires an argument.")
                value = args[i + 1]
                i += 1
            found.setdefault(PERSISTENT_OPTIONS[name], []).append(value)
            if PERSISTENT_OPTIONS[name] not in _REPEATABLE:
                found[PERSISTENT_OPTIONS[name]] = found[PERSISTENT_OPTIONS[name]][-1:]
        elif eq and name in flags:
            out.extend(_flag_value(name, value, flags[name]))
        elif takes_tail and _negative_tail(args, i):
            # Left to click, `--tail -1` would read as an unknown option `-1`.
            raise click.BadParameter(
                "N must be 0 or more (the lines of each stream to start with; 0: none)",
                param_hint="'-t' / '--tail'",
            )
        elif eq and takes_tail and name in _TAIL_OPTIONS and not value.isdigit():
            # Bacalhau's --tail is a boolean flag (`--tail=true`): on, the last lines.
            word = value.strip().lower()
            if word not in _TRUE | _FALSE:
                raise click.BadParameter(
                    f"{value!r} is neither a count nor true or false", param_hint=f"'{name}'"
                )
            if word in _TRUE:
                out.extend((name, str(BARE_TAIL_LINES)))
        elif eq and takes_tail and name == "-t":
            out.extend((name, value))  # `-t=5`: click would read the value as "=5"
        elif takes_tail and arg in _TAIL_OPTIONS and not _is_count(args, i + 1):
            out.extend((arg, str(BARE_TAIL_LINES)))
        else:
            out.append(arg)
        i += 1
    return out


def _boolean_flags(command: click.Command) -> dict[str, tuple[str | None, bool]]:
    """Each boolean flag's spellings (``--follow`` and ``-f``) -> the spelling that turns it
    off (None: it has none) and whether it is on by default."""
    flags: dict[str, tuple[str | None, bool]] = {}
    for p in command.params:
        if isinstance(p, click.Option) and p.is_flag and p.is_bool_flag:
            off = next((o for o in p.secondary_opts if o.startswith("--")), None)
            for opt in p.opts:
                # (``is True``: click 8.5 leaves an unset default as a sentinel object.)
                flags[opt] = (off, p.default is True)
    return flags


def _ungrouped_tail(
    args: Sequence[str], flags: dict[str, tuple[str | None, bool]]
) -> Sequence[str]:
    """``-ft``/``-tf`` as ``-f -t``: in Bacalhau both are boolean flags, which pflag lets
    one group; here ``-t`` takes an optional count, which click would read from the rest
    of the group (or the next word). Groups of other letters are click's to read."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return [*out, *args[i:]]
        letters = arg[1:]
        grouped = len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and letters.isalpha()
        if grouped and "t" in letters and all(c == "t" or f"-{c}" in flags for c in letters):
            out.extend(f"-{c}" for c in letters)
        else:
            out.append(arg)
    return out


def _flag_value(name: str, value: str, flag: tuple[str | None, bool]) -> list[str]:
    off, on_by_default = flag
    word = value.strip().lower()
    if word in _TRUE:
        return [name]
    if word in _FALSE:
        if off:
            return [off]
        if not on_by_default:
            return []
        raise click.BadParameter(f"{name} cannot be turned off", param_hint=f"'{name}'")
    raise click.BadParameter(
        f"{value!r} is not a boolean (use true or false)", param_hint=f"'{name}'"
    )


def _is_count(args: Sequence[str], i: int) -> bool:
    return i < len(args) and args[i].isdigit()


def _negative_tail(args: Sequence[str], i: int) -> bool:
    """Whether ``args[i]`` is a ``--tail``/``-t`` given a negative count (``--tail -1``,
    ``--tail=-1``, ``-t-1``)."""
    arg = args[i]
    if arg in _TAIL_OPTIONS:
        value = args[i + 1] if i + 1 < len(args) else ""
    elif arg.startswith("--tail="):
        value = arg.partition("=")[2]
    elif arg.startswith("-t") and not arg.startswith("--"):
        value = arg[2:].removeprefix("=")
    else:
        return False
    return value.startswith("-") and value[1:].isdigit()
