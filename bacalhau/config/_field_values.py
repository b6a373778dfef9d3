"""The values of our own configuration fields: how each is read from a file, the environment
or a flag (durations, sizes, choices, lists), and the ranges and choices it must keep."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bacalhau._capabilities import capability_names
from bacalhau.config._api_users import ApiUserConfig
from bacalhau.config._bacalhau_keys import (
    LOG_LEVELS,
    LOG_MODES,
    NAME_PROVIDERS,
    seconds_or_duration,
)
from bacalhau.config._hooks import ApprovalHookConfig
from bacalhau.config._key_registry import Parse
from bacalhau.config._values import (
    capacity_parser,
    invalid,
    parse_bool,
    parse_bytes,
    parse_choice,
    parse_int,
    parse_list,
    parse_map,
    parse_text,
)
from bacalhau.errors import InvalidRequest

__all__ = ["EVENT_LOOPS", "FAULTY_RESULT_MODES", "check_field", "parse_own"]

#: Values of ``faulty_results`` ("": off).
FAULTY_RESULT_MODES = ("", "corrupt", "misclaim")
#: The event loops a node can run on (``event_loop``).
EVENT_LOOPS = ("uvloop", "asyncio")


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise invalid(key, value, "expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(key, value, "expected a number") from None


#: Our whole-number fields that count bytes: they take sizes as jobs write them too (5Mi).
_BYTES = frozenset(
    {
        "max_job_size",
        "docker_tmp_size",
        "docker_writable_layer_limit",
        "docker_result_disk_limit",
        "wasm_memory_limit",
        "executor_output_limit",
        "input_max_bytes",
        "data_upload_max_bytes",
        "result_check_max_bytes",
    }
)

#: Our float fields that are not durations (every other one counts seconds).
_RATIOS = frozenset(
    {"gossip_suspicion_mult", "gossip_suspicion_max_mult", "capacity_fraction", "min_reputation"}
)

#: Our fields whose values need more than their type says.
_FIELD_PARSERS: dict[str, Parse] = {
    "allocated_cpu": capacity_parser("CPU"),
    "allocated_memory": capacity_parser("Memory"),
    "allocated_disk": capacity_parser("Disk"),
    "allocated_gpu": capacity_parser("GPU"),
    "api_users": ApiUserConfig.parse_list,
    "approval_hooks": ApprovalHookConfig.parse_list,
    "log_level": lambda k, v: parse_choice(k, v, LOG_LEVELS),
    "log_mode": lambda k, v: parse_choice(k, v, LOG_MODES),
    "name_provider": lambda k, v: parse_choice(k, v, NAME_PROVIDERS),
    "scheduler_workers": lambda k, v: parse_int(k, v, minimum=1),
    "housekeeping_interval": lambda k, v: _positive_seconds(k, v),
    "queue_backoff": lambda k, v: _positive_seconds(k, v),
    "s3_presigned_url_expiration": lambda k, v: _positive_seconds(k, v),
    "s3managed_presigned_url_expiration": lambda k, v: _positive_seconds(k, v),
}


def _positive_seconds(key: str, value: Any) -> float:
    seconds = seconds_or_duration(key, value)
    if seconds <= 0:
        raise invalid(key, value, "must be longer than 0")
    return seconds


def parse_own(name: str, key: str, value: Any, current: Any) -> Any:
    """``value`` for our field ``name``, in the type of its default; errors name ``key``."""
    special = _FIELD_PARSERS.get(name)
    if special is not None:
        return special(key, value)
    if isinstance(current, bool):
        return parse_bool(key, value)
    if isinstance(current, int):
        return parse_bytes(key, value) if name in _BYTES else parse_int(key, value)
    if isinstance(current, float):
        # Seconds, as a number or a Go duration (168h), as the README promises every
        # duration; the few ratios take a number only.
        return _float(key, value) if name in _RATIOS else seconds_or_duration(key, value)
    if isinstance(current, Path):
        return Path(parse_text(key, value)).expanduser()
    if isinstance(current, tuple):
        return parse_list(key, value)
    if isinstance(current, Mapping):
        return parse_map(key, value)
    return parse_text(key, value)


#: Ports a node listens on, and the least each may be set to (-1: unset, or off).
_LISTEN_PORTS = {
    "api_port": 0,
    "grpc_port": 0,
    "publisher_port": 0,
    "api_grpc_port": -1,
    "metrics_port": -1,
}


#: Sizes, counts and durations of ours for which a negative value means nothing (0 keeps its
#: documented meaning: no cap, at once, keep forever, ...).
_NON_NEGATIVE = frozenset(
    {
        "probe_timeout",
        "docker_image_cache_ttl",
        "docker_image_cache_size",
        "docker_pids_limit",
        "docker_tmp_size",
        "docker_writable_layer_limit",
        "docker_result_disk_limit",
        "wasm_memory_limit",
        "executor_output_limit",
        "callback_linger",
        "input_max_bytes",
        "input_read_timeout",
        "input_max_retries",
        "ipfs_fetch_timeout",
        "data_upload_max_bytes",
        "log_streams_max",
        "log_streams_per_client_max",
        "heartbeat_interval",
        "disconnect_timeout",
        "default_queue_timeout",
        "retry_delay",
        "retry_max_delay",
        "execution_timeout_grace",
        "rejoin_grace",
        "lost_node_wait",
        "lost_execution_grace",
        "queue_move_after",
        "job_retention",
        "result_check_max_bytes",
    }
)
#: Counts of which at least one is needed for the setting to make sense.
_AT_LEAST_ONE = frozenset({"max_job_size", "max_attempts", "max_attempts_per_node"})


def check_field(name: str, key: str, value: Any) -> Any:
    """Range and choice checks of our fields, whichever key set them."""
    if name in _NON_NEGATIVE and value < 0:
        raise InvalidRequest(f"{key} must not be negative, not {value!r}", details={"Field": key})
    if name in _AT_LEAST_ONE and value < 1:
        raise InvalidRequest(f"{key} must be at least 1, not {value!r}", details={"Field": key})
    if name == "capacity_fraction" and not 0 < value <= 1:
        # A share of the host: offered_capacity would refuse it only once the node starts.
        raise InvalidRequest(
            f"{key} must be above 0 and at most 1, not {value!r}",
            details={"Field": key},
            hint="0.7 offers 70% of the host's CPU, memory and disk",
        )
    least = _LISTEN_PORTS.get(name)
    if least is not None and not least <= value <= 65535:
        # The socket layer would take 70000 as 4464: a typo must not move a node's port.
        raise InvalidRequest(
            f"{key} must be a port number from {least} to 65535, not {value!r}",
            details={"Field": key},
            hint="0 picks a free port" + ("; -1 leaves it unset" if least < 0 else ""),
        )
    if name == "locality" and str(value).lower() not in ("anywhere", "local"):
        raise InvalidRequest(
            f"{key} must be anywhere or local, not {value!r}", details={"Field": key}
        )
    if name == "faulty_results" and str(value).lower() not in FAULTY_RESULT_MODES:
        raise InvalidRequest(
            f"{key} must be one of: {', '.join(m for m in FAULTY_RESULT_MODES if m)}"
            f" (or empty), not {value!r}",
            details={"Field": key},
        )
    if name == "ask_answer_linger" and not 0.0 <= value <= 0.1:
        raise InvalidRequest(
            f"{key} must be between 0 and 0.1 seconds, not {value!r}",
            details={"Field": key},
            hint="a compute node holds an ask's answer for at most 0.1 s",
        )
    if name == "event_loop":
        value = str(value).lower()
        if value not in EVENT_LOOPS:
            raise InvalidRequest(
                f"{key} must be one of: {', '.join(EVENT_LOOPS)}, not {value!r}",
                details={"Field": key},
            )
    if name == "docker_cap_drop":
        try:
            value = capability_names(value)
        except ValueError as err:
            raise InvalidRequest(
                f"{key} names {err}",
                details={"Field": key},
                hint="Linux capability names such as NET_RAW or SYS_ADMIN, or ALL",
            ) from None
    if name == "min_reputation" and not 0.0 <= value <= 1.0:
        raise InvalidRequest(
            f"{key} must be between 0 and 1, not {value!r}", details={"Field": key}
        )
    return value
