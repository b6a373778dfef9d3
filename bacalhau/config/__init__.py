"""Typed, frozen configuration: defaults < config file < environment < flags."""

from bacalhau.config._config import (
    ApprovalHookConfig,
    NodeConfig,
    default_data_dir,
    load_config,
)

__all__ = ["ApprovalHookConfig", "NodeConfig", "default_data_dir", "load_config"]
