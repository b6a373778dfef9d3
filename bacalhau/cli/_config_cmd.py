"""``bacalhau config list|set|show|default``: the configuration a node (and this client)
reads, and the file it reads it from.

``list`` shows every key with the value it has here: our keys, then Bacalhau's keys that map
to them. ``set`` checks a key and its value as a starting node would and writes them into
``<data-dir>/config.yaml`` (or the file named by ``set``'s own ``--config``), in Bacalhau's
nested sections, replacing any other spelling of the same key the file holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bacalhau._yaml import load_yaml
from bacalhau.cli._client_config import data_dir, node_config
from bacalhau.cli._completion import complete_setting
from bacalhau.cli._render import emit, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.config import (
    KeyOrigin,
    KeyStatus,
    NodeConfig,
    bacalhau_document,
    describe_key,
    effective_settings,
    known_keys,
    validate_value,
)
from bacalhau.errors import InvalidRequest
from bacalhau.identity._files import write_private

__all__ = ["config_group"]

_SUFFIXES = (".yaml", ".yml")


@click.group("config", cls=BacalhauGroup)
def config_group() -> None:
    """Show and change the configuration (<data-dir>/config.yaml)."""


@config_group.command("list")
@output_option()
@pass_state
def config_list(state: CliState, output: str) -> None:
    """Every key and the value it has here, with what each of Bacalhau's keys sets
    (``--output yaml``: the configuration nested as a config file, as Bacalhau prints it)."""
    if output == "yaml":
        emit(bacalhau_document(node_config(state.persistent)), output)
        return
    settings = effective_settings(node_config(state.persistent))
    notes = {
        info.key: f"sets {info.field}" if info.origin is KeyOrigin.BACALHAU else ""
        for info in known_keys()
        if info.status is KeyStatus.MAPPED
    }
    entries = [
        {"Key": key, "Value": value, "Description": notes.get(key, "")}
        for key, value in settings.items()
    ]
    if not tabular(output):
        emit(entries, output)
        return
    table(
        ("KEY", "VALUE", "DESCRIPTION"),
        [[e["Key"], _shown(e["Value"]), e["Description"]] for e in entries],
    )


@config_group.command("show")
@output_option(default="yaml", choices=("json", "yaml"))
@pass_state
def config_show(state: CliState, output: str) -> None:
    """The configuration in effect here, in Bacalhau's nested sections (v1.0-v1.3's
    ``config show``; ``config list`` gives every key)."""
    emit(bacalhau_document(node_config(state.persistent)), output)


@config_group.command("default")
@output_option(default="yaml", choices=("json", "yaml"))
def config_default(output: str) -> None:
    """The defaults, in Bacalhau's nested sections (v1.0-v1.3's ``config default``)."""
    emit(bacalhau_document(NodeConfig()), output)


@config_group.command("set")
@click.argument("setting", shell_complete=complete_setting)
@click.argument("values", nargs=-1)
@click.option(
    "-c",
    "--config",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config file to write (.yaml or .yml) [default: <data-dir>/config.yaml].",
)
@pass_state
def config_set(state: CliState, setting: str, values: tuple[str, ...], target: Path | None) -> None:
    """Set KEY=VALUE (or KEY VALUE...; several values make a list) in the config file.

    The key and value are checked as a starting node checks them: an unknown key, a bad
    value or a refused key is an error and writes nothing; a key this node ignores is written
    with a warning saying why it has no effect.
    """
    key, eq, value = setting.partition("=")
    if eq:
        if values:
            raise click.UsageError("give KEY=VALUE or KEY VALUE..., not both")
        given: Any = value
    elif not values:
        raise click.UsageError("give both a key and a value: KEY=VALUE or KEY VALUE")
    else:
        given = values[0] if len(values) == 1 else list(values)
    info = describe_key(key)
    checked = validate_value(key, given)
    path = target or data_dir(state.persistent) / "config.yaml"
    if path.suffix.lower() not in _SUFFIXES:
        raise InvalidRequest(
            f"{path} is not a YAML file",
            hint="name a .yaml or .yml file",
            details={"Field": "--config"},
        )
    document = _read(path)
    _remove(document, info.key, "")
    _insert(document, info.key.split(".") if "." in info.key else [info.key], checked)
    path.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    # 0600: a node's configuration may hold its join token or API users' passwords.
    write_private(path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode())
    click.echo(f"Writing config to {path}", err=True)
    if info.status is KeyStatus.IGNORED:
        click.echo(f"Warning: {info.key} has no effect on this node: {info.reason}", err=True)


def _shown(value: Any) -> str:
    """A value as a config file or ``config set`` writes it (``true``, not Python's
    ``True``)."""
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_shown(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _read(path: Path) -> dict[str, Any]:
    """The file's mapping as written (sections kept), or an empty one when there is none."""
    if not path.exists():
        return {}
    import yaml

    try:
        loaded = load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InvalidRequest(
            f"cannot read config file {path}: {err}",
            hint="fix or remove the file; `config set` rewrites it whole",
            details={"Field": "--config"},
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidRequest(
            f"config file {path} must hold a mapping of keys to values",
            details={"Field": "--config"},
        )
    return loaded


def _remove(section: dict[str, Any], canonical: str, prefix: str) -> None:
    """Drop every spelling of ``canonical`` in ``section`` (flat or in sections), and the
    sections left empty."""
    for name in list(section):
        path = f"{prefix}.{name}" if prefix else str(name)
        value = section[name]
        if _canonical(path) == canonical:
            del section[name]
        elif isinstance(value, dict):
            _remove(value, canonical, path)
            if not value:
                del section[name]


def _canonical(key: str) -> str | None:
    try:
        return describe_key(key).key
    except InvalidRequest:
        return None  # a section, or a key the file holds that nobody knows: left alone


def _insert(section: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set ``value`` at ``parts`` (``["API", "Port"]``), reusing sections the file already
    has whatever their case."""
    head, rest = parts[0], parts[1:]
    if not rest:
        section[head] = value
        return
    existing = next((k for k in section if str(k).lower() == head.lower()), None)
    if existing is None or not isinstance(section[existing], dict):
        existing = head
        section[existing] = {}
    _insert(section[existing], rest, value)
