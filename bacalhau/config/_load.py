"""Loading a node's configuration from its layers: files, the environment, ``-c`` settings
and flags (the order is in :mod:`bacalhau.config._config`'s docstring).

A config file is YAML or JSON, with keys flat (``Compute.AllocatedCapacity.CPU: 50%``) or in
sections as Bacalhau writes them (``Compute: {AllocatedCapacity: {CPU: 50%}}``), ours and
Bacalhau's mixed. An error in a file names the file and the key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from bacalhau._yaml import load_yaml
from bacalhau.config._bacalhau_keys import BACALHAU_KEYS
from bacalhau.config._config import NodeConfig
from bacalhau.config._key_registry import normalise
from bacalhau.errors import BacalhauError, InvalidRequest

#: Environment variables ``BACALHAU_NODE_<KEY>`` set ``<key>`` (``BACALHAU_NODE_API_PORT``).
ENV_PREFIX = "BACALHAU_NODE_"
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class ConfigOptions:
    """What ``-c/--config`` options hold: config files and ``Key=Value`` settings, each in
    the order given (see :func:`split_config_options`)."""

    files: tuple[Path, ...] = ()
    values: dict[str, str] = field(default_factory=dict)


#: A configuration key (``Orchestrator.Enabled``), as opposed to a file name.
_BARE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")


def split_config_options(options: Iterable[str]) -> ConfigOptions:
    """Sort ``-c`` options as Bacalhau does: ``Key=Value`` is a setting (the value is
    everything after the first ``=``, commas and ``=`` included), a dotted key alone that
    is no file sets it to true (``Orchestrator.Enabled``), as does one of Bacalhau's
    top-level keys alone (``DisableAnalytics``), anything else a config file path
    (YAML or JSON), which must exist. Raises :class:`InvalidRequest` naming the
    option otherwise (``details["Field"]`` is ``--config``)."""
    files: list[Path] = []
    values: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if sep and key.strip() and "/" not in key:
            values[key.strip()] = value
            continue
        path = Path(item).expanduser()
        if path.is_file():
            files.append(path.absolute())
        elif path.suffix.lower() in _FILE_SUFFIXES or "/" in item:
            raise InvalidRequest(
                f"configuration file {item!r} does not exist"
                + (" (it is a directory)" if path.is_dir() else ""),
                hint="give the path of a YAML or JSON config file, or Key=Value",
                details={"Field": "--config"},
            )
        elif (_BARE_KEY.fullmatch(item) and "." in item) or _is_top_level_key(item):
            # Bacalhau's ``--config Orchestrator.Enabled`` (or ``-c DisableAnalytics``): a
            # key alone sets it to true.
            values[item] = "true"
        else:
            raise InvalidRequest(
                f"{item!r} is not of the form Key=Value, nor a config file (none at that path)",
                hint="write -c Key=Value (-c Compute.AllocatedCapacity.CPU=50%), "
                "or -c path/to/config.yaml",
                details={"Field": "--config"},
            )
    return ConfigOptions(tuple(files), values)


def _is_top_level_key(item: str) -> bool:
    """Whether ``item`` is one of Bacalhau's top-level keys, spelled as Bacalhau spells it
    (``DisableAnalytics``; our own field names alone stay refused as not Key=Value)."""
    return item[:1].isupper() and normalise(item) in BACALHAU_KEYS


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML or JSON config file, flat (``Section.Key: value``) and in the
    file's order; an unreadable file, bad YAML/JSON, or a file not holding a mapping is an
    :class:`InvalidRequest` naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidRequest(
            f"configuration file {str(path)!r} does not exist", details={"Field": "--config"}
        ) from None
    except OSError as exc:
        raise InvalidRequest(
            f"cannot read configuration file {str(path)!r}: {exc.strerror or exc}",
            details={"Field": "--config"},
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"configuration file {str(path)!r} is not UTF-8 text (byte {exc.start}): it "
            "should be YAML or JSON",
            details={"Field": "--config"},
        ) from None
    try:
        loaded = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise InvalidRequest(f"{path} is not valid {kind}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise InvalidRequest(f"{path} must hold a mapping of keys to values")
    return flatten(loaded)


def load_config(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config_files: Iterable[Path] = (),
    config_values: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Build the configuration from its layers, lowest first: defaults,
    ``<data_dir>/config.yaml``, ``config_files`` in order, ``BACALHAU_NODE_*`` variables of
    ``environ`` (``os.environ`` by default; ``BACALHAU_DIR`` names the data dir) and
    Bacalhau's ``BACALHAU_<KEY>`` ones (``BACALHAU_API_PORT``; ours win),
    ``config_values`` (``-c Key=Value``) in order, and ``flags`` (``None``: not given).

    The data dir is the highest layer's ``DataDir``/``data_dir``; its ``config.yaml`` is then
    read below the others. Raises :class:`~bacalhau.errors.BacalhauError` naming the key (and
    the file) at fault."""
    env = os.environ if environ is None else environ
    files = [(path, read_config_file(path)) for path in config_files]
    # Bacalhau's own first: BACALHAU_<KEY>, the key's sections joined by "_" (viper's
    # AutomaticEnv: BACALHAU_COMPUTE_ALLOCATEDCAPACITY_CPU is Compute.AllocatedCapacity.CPU);
    # then ours, BACALHAU_NODE_<KEY>, which win where both set a setting.
    variables: dict[str, str] = {}  # key -> the variable that set it, for errors
    for name in env:
        if name.upper() in _BACALHAU_ENV:
            variables[_BACALHAU_ENV[name.upper()]] = name
    for name in env:
        if name.startswith(ENV_PREFIX):
            variables[name[len(ENV_PREFIX) :].lower()] = name
    from_env = {key: env[name] for key, name in variables.items()}
    if env.get("BACALHAU_DIR") and not any(normalise(k) == "data_dir" for k in from_env):
        from_env = {"data_dir": env["BACALHAU_DIR"], **from_env}
    upper: list[tuple[str, Mapping[str, Any]]] = [
        *((str(path), values) for path, values in files),
        (_ENVIRONMENT, from_env),
        ("", config_values or {}),
        ("", flags),
    ]
    # The data dir decides which config.yaml is the lowest layer: find it first.
    cfg = NodeConfig()
    for source, layer in upper:
        cfg = _apply(cfg, layer, source, variables)
    own_file = cfg.data_dir / "config.yaml"
    if not own_file.exists():
        return cfg
    cfg = _apply(NodeConfig(), read_config_file(own_file), str(own_file))
    for source, layer in upper:
        cfg = _apply(cfg, layer, source, variables)
    return cfg


def _apply(
    cfg: NodeConfig,
    layer: Mapping[str, Any],
    source: str,
    variables: Mapping[str, str] | None = None,
) -> NodeConfig:
    try:
        return cfg.with_overrides(layer)
    except BacalhauError as err:
        if source == _ENVIRONMENT:
            # Name the variable at fault: the key it spells is in the message already.
            field = normalise(err.details.get("Field", ""))
            named = [v for k, v in (variables or {}).items() if normalise(k) == field]
            where = named[0] if named else "the BACALHAU_* environment variables"
            raise type(err)(f"{where}: {err.message}", hint=err.hint, details=err.details) from None
        if not source:
            raise
        # A file: say which (the key is in the message and the details already).
        raise type(err)(f"{source}: {err.message}", hint=err.hint, details=err.details) from None


#: The source name of the environment layer (its errors name the variable instead).
_ENVIRONMENT = "<environment>"
#: Bacalhau's environment variable of each of its keys (``BACALHAU_API_PORT``) -> the key.
_BACALHAU_ENV = {
    "BACALHAU_" + entry.info.key.upper().replace(".", "_"): entry.info.key
    for entry in BACALHAU_KEYS.values()
}

#: Every known key, normalised: ours and Bacalhau's.
_KNOWN = frozenset(f.name for f in fields(NodeConfig)) | frozenset(BACALHAU_KEYS)
#: Every section of a known key (``compute``, ``compute_allocatedcapacity``, ``gossip``).
_SECTIONS = frozenset(key[:i] for key in _KNOWN for i in range(1, len(key)) if key[i] == "_")


def flatten(loaded: Mapping[str, Any]) -> dict[str, Any]:
    """Sections become dotted keys (``Compute: {Enabled: true}`` is ``Compute.Enabled``)
    down to a known key, whose value is kept whole even when it is a mapping (``Labels``,
    ``API.Auth.Methods``). An unknown section is left as a key, to be refused by name."""
    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        _flatten_into(flat, str(key), value)
    return flat


def _flatten_into(flat: dict[str, Any], path: str, value: Any) -> None:
    # A known key that is also a section (our ``compute`` flag, Bacalhau's ``Compute.*``)
    # is a section when given a mapping: no key takes a mapping and has keys under it.
    if isinstance(value, Mapping) and normalise(path) in _SECTIONS:
        for sub, sub_value in value.items():
            _flatten_into(flat, f"{path}.{sub}", sub_value)
    else:
        flat[path] = value
