"""The client's own configuration: which node's API to talk to, and how much to log.

Bacalhau's client reads the same configuration as its node: ``API.Host`` and ``API.Port``
from ``<data-dir>/config.yaml``, or from the files and ``Key=Value`` settings given with
``-c/--config`` (read above the default file, as a node reads them). A flag or an
environment variable still wins over either (see :class:`~bacalhau.cli._root.CliState`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import click

from bacalhau.cli._args import Persistent
from bacalhau.config import (
    LOG_LEVELS,
    LOG_MODES,
    NodeConfig,
    default_data_dir,
    load_config,
    read_config_file,
    split_config_options,
)

__all__ = ["LOG_LEVELS", "LOG_MODES", "ClientConfig", "client_config", "setup_logging"]


@dataclass(frozen=True)
class ClientConfig:
    """What the configuration says of the API's address (None: it says nothing), and how to
    reach it over TLS (``API.TLS.UseTLS``, ``Insecure``, ``CAFile``, as Bacalhau's client
    reads them)."""

    api_host: str | None = None
    api_port: int | None = None
    use_tls: bool = False
    insecure_tls: bool = False
    ca_file: str = ""


def data_dir(persistent: Persistent) -> Path:
    """``--data-dir`` (or ``--repo``), else ``BACALHAU_DIR``, else ``~/.bacalhau``."""
    flag = persistent.last("data_dir")
    return Path(flag).expanduser() if flag else default_data_dir()


def node_config(persistent: Persistent) -> NodeConfig:
    """The configuration as a node on this command line would read it:
    ``<data-dir>/config.yaml``, then the ``-c`` files and ``Key=Value`` settings in order (a
    key or value a node would refuse is an :class:`~bacalhau.errors.InvalidRequest` here
    too)."""
    options = split_config_options(persistent.get("config", []))
    flag = persistent.last("data_dir")
    return load_config(
        {"data_dir": flag} if flag else {},
        config_files=options.files,
        config_values=options.values,
    )


def client_config(persistent: Persistent, *, data_dir_file: bool = True) -> ClientConfig:
    """The API address the configuration gives (see :func:`node_config`); without
    ``data_dir_file``, only what the ``-c`` files and settings give."""
    if data_dir_file:
        cfg = node_config(persistent)
    else:
        options = split_config_options(persistent.get("config", []))
        cfg = NodeConfig()
        for path in options.files:
            cfg = cfg.with_overrides(read_config_file(path))
        cfg = cfg.with_overrides(options.values)
    # Only what the configuration changed counts: the node's own defaults are bind
    # addresses (0.0.0.0), not where a client should look.
    default = NodeConfig()
    return ClientConfig(
        api_host=cfg.api_host if cfg.api_host != default.api_host else None,
        api_port=cfg.api_port if cfg.api_port != default.api_port else None,
        use_tls=cfg.api_tls_use_tls,
        insecure_tls=cfg.api_tls_insecure,
        ca_file=cfg.api_tls_ca_file,
    )


def setup_logging(persistent: Persistent) -> None:
    """The ``bacalhau`` loggers write to standard error at ``--log-level`` (else
    ``LOG_LEVEL``, else warn), formatted as a node's by ``--log-mode``."""
    level = (persistent.last("log_level") or os.environ.get("LOG_LEVEL") or "warn").lower()
    mode = (persistent.last("log_mode") or "default").lower()
    # Written after a subcommand, these were not checked by the root's options.
    for value, known, flag in ((level, LOG_LEVELS, "--log-level"), (mode, LOG_MODES, "--log-mode")):
        if value not in known:
            raise click.BadParameter(
                f"{value!r} is not one of {', '.join(known)}", param_hint=f"'{flag}'"
            )
    from bacalhau._logging import log_handler, log_level

    handler = log_handler(mode)
    handler.set_name(_HANDLER)
    logger = logging.getLogger("bacalhau")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER]:
        logger.removeHandler(old)  # an earlier command line's, in the same process
    logger.addHandler(handler)
    logger.setLevel(log_level(level))


_HANDLER = "bacalhau-cli"
