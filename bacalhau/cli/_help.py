"""``bacalhau help [COMMAND]...``: a command's help, as cobra's ``help`` command shows it."""

from __future__ import annotations

import click

from bacalhau.errors import InvalidRequest

__all__ = ["help_command"]


@click.command("help", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, metavar="[COMMAND]...")
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Help about any command (``bacalhau help job run``), as cobra's ``help``."""
    root = ctx.find_root()
    target: click.Command = root.command
    names = [root.info_name or "bacalhau"]
    for name in command:
        found = target.get_command(ctx, name) if isinstance(target, click.Group) else None
        if found is None:
            raise InvalidRequest(
                f"unknown help topic {' '.join(command)!r}",
                hint=f"`{' '.join(names)} --help` lists the commands",
            )
        target, names = found, [*names, name]
    shown = click.Context(
        target,
        info_name=" ".join(names),
        max_content_width=ctx.max_content_width,
        help_option_names=ctx.help_option_names,
    )
    with shown:
        click.echo(target.get_help(shown), color=ctx.color)
