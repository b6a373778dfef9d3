"""Typed, frozen configuration: defaults < config files < environment < ``-c`` < flags.

Keys are ours (:class:`NodeConfig`'s fields) or Bacalhau's (v1.5-v1.9), each mapped to one of
ours, ignored with a reason, or refused with a reason and a hint; see :func:`describe_key`.
"""

from bacalhau.config._api_users import CAPABILITY_ACTIONS, ApiUserConfig, is_bcrypt_hash
from bacalhau.config._bacalhau_keys import LOG_LEVELS, LOG_MODES
from bacalhau.config._config import NodeConfig, default_data_dir
from bacalhau.config._hooks import ApprovalHookConfig
from bacalhau.config._job_defaults import JOB_TYPES, JobDefaults, TaskDefaults
from bacalhau.config._key_registry import KeyInfo, KeyOrigin, KeyStatus
from bacalhau.config._load import (
    ConfigOptions,
    load_config,
    read_config_file,
    split_config_options,
)
from bacalhau.config._settings import (
    bacalhau_document,
    describe_key,
    effective_settings,
    known_keys,
    validate_value,
)
from bacalhau.config._values import go_duration_text, parse_duration

__all__ = [
    "CAPABILITY_ACTIONS",
    "JOB_TYPES",
    "LOG_LEVELS",
    "LOG_MODES",
    "ApiUserConfig",
    "ApprovalHookConfig",
    "ConfigOptions",
    "JobDefaults",
    "KeyInfo",
    "KeyOrigin",
    "KeyStatus",
    "NodeConfig",
    "TaskDefaults",
    "bacalhau_document",
    "default_data_dir",
    "describe_key",
    "effective_settings",
    "go_duration_text",
    "is_bcrypt_hash",
    "known_keys",
    "load_config",
    "parse_duration",
    "read_config_file",
    "split_config_options",
    "validate_value",
]
