"""``bacalhau completion SHELL``: the shell's completion script, as Bacalhau's ``completion``
command prints it, and the completions of configuration keys.

The script calls ``bacalhau`` back with ``_BACALHAU_COMPLETE`` set for each completion asked
(click's protocol): commands, flags and their fixed choices come from the command tree; keys
of ``-c/--config`` and ``config set`` from the configuration's own key registry, with what
each sets.
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import BashComplete, CompletionItem, get_completion_class

from bacalhau.errors import InvalidRequest

__all__ = ["complete_config_value", "complete_setting", "completion"]

#: The shells click writes a script for.
_SHELLS = ("bash", "zsh", "fish")
_PROG = "bacalhau"
_VAR = "_BACALHAU_COMPLETE"


@click.command("completion")
@click.argument("shell", metavar="SHELL", type=click.Choice([*_SHELLS, "powershell"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash (4.4 or newer), this shell:  source <(bacalhau completion bash)
      every new shell:  bacalhau completion bash > /etc/bash_completion.d/bacalhau
    zsh, every new shell (compinit on):
      bacalhau completion zsh > "${fpath[1]}/_bacalhau"
    fish, every new shell:
      bacalhau completion fish > ~/.config/fish/completions/bacalhau.fish
    """
    if shell not in _SHELLS:
        raise InvalidRequest(
            f"no completion script for {shell}: this command line completes in "
            + ", ".join(_SHELLS),
            hint="use bash, zsh or fish, or type the commands out (bacalhau --help lists them)",
        )
    script_class = _BashScript if shell == "bash" else get_completion_class(shell)
    assert script_class is not None  # the three are click's own
    root = ctx.find_root().command
    try:
        source = script_class(root, {}, _PROG, _VAR).source()
    except RuntimeError as err:  # bash older than 4.4
        raise InvalidRequest(str(err), hint="use bash 4.4 or newer, zsh or fish") from None
    click.echo(source)


class _BashScript(BashComplete):
    """Click's bash script, leaving the cursor after a completed ``KEY=`` (for its value)
    rather than after a space, as Bacalhau's completion of ``-c`` does."""

    source_template = BashComplete.source_template.replace(
        "COMPREPLY+=($value)",
        "COMPREPLY+=($value)\n            [[ $value == *= ]] && compopt -o nospace",
    )


def _key_items(incomplete: str, suffix: str) -> list[CompletionItem]:
    from bacalhau.config import KeyOrigin, KeyStatus, known_keys

    items = []
    lowered = incomplete.lower()
    for info in known_keys():
        if info.status is KeyStatus.REFUSED or not info.key.lower().startswith(lowered):
            continue
        if info.status is KeyStatus.IGNORED:
            what = f"ignored: {info.reason}"
        elif info.origin is KeyOrigin.BACALHAU:
            what = f"sets {info.field}"
        else:
            what = ""
        items.append(CompletionItem(info.key + suffix, help=what or None))
    return items


def complete_setting(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    """``config set KEY``: the keys starting with what is typed (case-insensitive, as keys
    are read), each with what it sets."""
    if "=" in incomplete:
        return []
    return _key_items(incomplete, "")


def complete_config_value(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    """``-c/--config``: a config file, or a ``KEY=`` to go on with a value."""
    if "=" in incomplete:
        return []
    if "/" in incomplete or incomplete.startswith(".") or incomplete.endswith((".y", ".j")):
        return [CompletionItem(incomplete, type="file")]
    # A file item first: bash then completes file names only where no key matches.
    return [CompletionItem(incomplete, type="file"), *_key_items(incomplete, "=")]
