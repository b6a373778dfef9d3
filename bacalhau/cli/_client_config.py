"""The client's own configuration: which node's API to talk to, and how much to log.

Bacalhau's client reads the same configuration as its node: ``API.Host`` and ``API.Port``
from ``<data-dir>/config.yaml``, or from the files and ``Key=Value`` settings given with
``-c/--config`` (files given there replace the default file, as in Bacalhau). A flag or an
environment variable still wins over either (see :class:`~bacalhau.cli._root.CliState`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bacalhau.cli._args import Persistent
from bacalhau.config import NodeConfig, default_data_dir
from bacalhau.errors import InvalidRequest

__all__ = ["LOG_LEVELS", "LOG_MODES", "ClientConfig", "client_config", "setup_logging"]

#: ``--log-level`` values, as Bacalhau names them.
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal", "panic")
#: ``--log-mode`` values: plain lines, or one JSON object a line.
LOG_MODES = ("default", "json")
_PY_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class ClientConfig:
    """What the configuration says of the API's address (None: it says nothing)."""

    api_host: str | None = None
    api_port: int | None = None


def data_dir(persistent: Persistent) -> Path:
    """``--data-dir`` (or ``--repo``), else ``BACALHAU_DIR``, else ``~/.bacalhau``."""
    flag = persistent.last("data_dir")
    return Path(flag).expanduser() if flag else default_data_dir()


def client_config(persistent: Persistent) -> ClientConfig:
    """The API address the config files and ``-c`` settings give. Raises
    :class:`InvalidRequest` for an unreadable file, an unknown key or a bad value."""
    files: list[Path] = []
    settings: dict[str, Any] = {}
    for item in persistent.get("config", []):
        key, eq, value = item.partition("=")
        if eq:
            settings[key.strip()] = value
        elif item.lower().endswith(_FILE_SUFFIXES):
            files.append(Path(item).expanduser())
        else:
            settings[item.strip()] = "true"  # a bare key turns a boolean setting on
    if not files:
        default = data_dir(persistent) / "config.yaml"
        files = [default] if default.exists() else []
    values: dict[str, Any] = {}
    for path in files:
        values.update(_read(path))
    values.update(settings)
    base = NodeConfig()
    # Validates every key and value, so a typo is an error here as it is for a node.
    cfg = base.with_overrides(values)
    named = {NodeConfig.field_name(k) for k in values}
    return ClientConfig(
        api_host=cfg.api_host if "api_host" in named else None,
        api_port=cfg.api_port if "api_port" in named else None,
    )


def _read(path: Path) -> Mapping[str, Any]:
    import yaml

    # The node's own reading of a config file's sections (``API: {Host: ...}``).
    from bacalhau.config._config import _flatten as flatten_config

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise InvalidRequest(
            f"config file {path} does not exist",
            hint="give an existing .yaml, .yml or .json file, or Key=Value",
            details={"Field": "--config"},
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidRequest(
            f"cannot read config file {path}: {err}", details={"Field": "--config"}
        ) from None
    except yaml.YAMLError as err:
        raise InvalidRequest(
            f"config file {path} is not valid YAML or JSON: {err}",
            details={"Field": "--config"},
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidRequest(
            f"config file {path} must hold a mapping of keys to values",
            details={"Field": "--config"},
        )
    return flatten_config(loaded)


def setup_logging(persistent: Persistent) -> None:
    """The ``bacalhau`` loggers write to standard error at ``--log-level`` (else
    ``LOG_LEVEL``, else warn), as plain lines or, with ``--log-mode json``, JSON lines."""
    level = (persistent.last("log_level") or os.environ.get("LOG_LEVEL") or "warn").lower()
    mode = (persistent.last("log_mode") or "default").lower()
    # Written after a subcommand, these were not checked by the root's options.
    for value, known, flag in ((level, LOG_LEVELS, "--log-level"), (mode, LOG_MODES, "--log-mode")):
        if value not in known:
            raise click.BadParameter(
                f"{value!r} is not one of {', '.join(known)}", param_hint=f"'{flag}'"
            )
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER)
    handler.setFormatter(
        _JsonLines()
        if mode == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger = logging.getLogger("bacalhau")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER]:
        logger.removeHandler(old)  # an earlier command line's, in the same process
    logger.addHandler(handler)
    logger.setLevel(_PY_LEVELS.get(level, logging.WARNING))


_HANDLER = "bacalhau-cli"


class _JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )
