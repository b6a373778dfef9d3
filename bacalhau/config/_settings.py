"""Configuration keys for tools: what a key is, whether a value suits it, what is in effect.

For ``bacalhau config list|set``: :func:`describe_key` gives a key's canonical spelling and
what it does here, :func:`validate_value` checks a value exactly as a starting node would
and returns it in the form to write to a config file, :func:`effective_settings` lists every
setting of a loaded configuration under its canonical key, :func:`known_keys` every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from bacalhau.config._api_users import ApiUserConfig
from bacalhau.config._bacalhau_keys import BACALHAU_KEYS
from bacalhau.config._config import NodeConfig, bacalhau_entry
from bacalhau.config._hooks import ApprovalHookConfig
from bacalhau.config._job_defaults import TaskDefaults
from bacalhau.config._key_registry import KeyInfo, KeyOrigin, KeyStatus
from bacalhau.config._values import format_go_duration, parse_structure

#: How a secret setting is shown (`config list`, `/api/v1/agent/config`).
REDACTED = "<redacted>"
#: Our fields that Bacalhau's keys give as Go durations (``1m0s``); ours count seconds.
_DURATION_FIELDS = frozenset(
    {
        "disconnect_timeout",
        "docker_image_cache_ttl",
        "heartbeat_interval",
        "housekeeping_interval",
        "input_read_timeout",
        "queue_backoff",
        "s3_presigned_url_expiration",
        "s3managed_presigned_url_expiration",
    }
)
#: The :class:`TaskDefaults` field each ``JobDefaults.<Type>.`` key suffix sets.
_TASK_DEFAULT_PARTS = {
    "Priority": "priority",
    "Task.Resources.CPU": "cpu",
    "Task.Resources.Memory": "memory",
    "Task.Resources.Disk": "disk",
    "Task.Resources.GPU": "gpu",
    "Task.Publisher.Type": "publisher_type",
    "Task.Publisher.Params": "publisher_params",
    "Task.Timeouts.ExecutionTimeout": "execution_timeout",
    "Task.Timeouts.TotalTimeout": "total_timeout",
}


def describe_key(key: str) -> KeyInfo:
    """What ``key`` (any case; ``.``, ``-`` or ``_`` between words) is on this node: its
    canonical spelling (``compute.allocatedcapacity.cpu`` is
    ``Compute.AllocatedCapacity.CPU``, ``API-PORT`` is ``api_port``), the
    :class:`~bacalhau.config.NodeConfig` field it sets, and whether it is mapped, ignored
    (with the reason) or refused (with the reason and a hint).

    Raises :class:`~bacalhau.errors.InvalidRequest` naming the key when neither Bacalhau nor
    we know it (the hint suggests the keys spelled most like it)."""
    entry = bacalhau_entry(key)
    if entry is not None:
        return entry.info
    name = NodeConfig.field_name(key)  # raises for unknown and internal keys
    return KeyInfo(name, name, KeyStatus.MAPPED, KeyOrigin.OURS)


def validate_value(key: str, value: Any) -> Any:
    """Check ``value`` for ``key`` as a node reads it from a config file, ``-c`` or the
    environment, and return it in the form to write to a YAML config file: booleans,
    numbers, lists and mappings typed (``"true"`` is ``True``, ``"a,b"`` is ``["a", "b"]``),
    durations, sizes and percentages as the text given (``"1m"``, ``"2Gi"``, ``"70%"``).

    Raises :class:`~bacalhau.errors.InvalidRequest` naming the key for an unknown key or a
    bad value, and :class:`~bacalhau.errors.InvalidConfiguration` for a value of a refused
    key that asks for what this node does not do (``API.TLS.CertFile``). A value of an
    ignored key is checked like any other and returned (it will have no effect)."""
    NodeConfig().with_overrides({key: value})  # every check a starting node makes
    entry = bacalhau_entry(key)
    if entry is None:
        name = NodeConfig.field_name(key)
        return _plain(getattr(NodeConfig().with_overrides({key: value}), name))
    parsed = entry.parse(key, value)
    if isinstance(parsed, float) and isinstance(value, str):
        return value.strip()  # a Go duration, kept as written ("1m"): Bacalhau reads that
    if isinstance(parsed, tuple) and parsed and isinstance(parsed[0], ApprovalHookConfig):
        return parse_structure(key, value)
    if isinstance(parsed, tuple) and parsed and isinstance(parsed[0], ApiUserConfig):
        return [u.to_dict() for u in parsed]
    return _plain(parsed)


def effective_settings(config: NodeConfig) -> dict[str, Any]:
    """Every setting of ``config`` as ``{canonical key: value}``, values as a config file
    holds them: our keys (field names, durations in seconds) in field order, then each
    Bacalhau key that maps to one of them (durations as Go writes them, ``1m0s``; an
    unset ``Compute.AllocatedCapacity.*`` as the share of the host it offers; an empty
    ``JobDefaults`` part leaves the requester's built-in default, CPU 500m, memory 1Gb).
    Ignored and refused keys have no effect and are not listed."""
    out: dict[str, Any] = {}
    for f in fields(NodeConfig):
        if f.name not in ("job_defaults", "ignored_settings"):
            out[f.name] = _plain(getattr(config, f.name))
    if config.join_token:
        out["join_token"] = REDACTED
    for entry in BACALHAU_KEYS.values():
        info = entry.info
        # Bacalhau's keys, and ours spelled as Bacalhau would (``Orchestrator.ApprovalHooks``)
        # so that the nested document holds them too.
        dotted = info.origin is KeyOrigin.BACALHAU or "." in info.key
        if info.status is KeyStatus.MAPPED and dotted:
            out[info.key] = (
                REDACTED
                if info.field == "join_token" and config.join_token
                else _bacalhau_value(info.key, info.field or "", config)
            )
    return out


def bacalhau_document(config: NodeConfig) -> dict[str, Any]:
    """``config`` as Bacalhau's nested configuration reads it (``{"API": {"Port": 1234},
    "Orchestrator": {"Enabled": true}, ...}``), from every Bacalhau key that sets one of our
    settings; what ``/api/v1/agent/config`` answers (secrets redacted by the API)."""
    out: dict[str, Any] = {}
    for key, value in effective_settings(config).items():
        parts = key.split(".")
        if len(parts) < 2 and not key[:1].isupper():
            continue  # one of our own keys (field names)
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = value
    return out


def known_keys() -> list[KeyInfo]:
    """Every key: ours (by field name) then Bacalhau's, each described as by
    :func:`describe_key`."""
    ours = [
        KeyInfo(f.name, f.name, KeyStatus.MAPPED, KeyOrigin.OURS)
        for f in fields(NodeConfig)
        if f.name not in ("job_defaults", "ignored_settings")
    ]
    return ours + sorted((e.info for e in BACALHAU_KEYS.values()), key=lambda i: i.key)


def _bacalhau_value(key: str, field: str, config: NodeConfig) -> Any:
    if key.startswith("JobDefaults."):
        _, job_type, suffix = key.split(".", 2)
        defaults = config.job_defaults.for_type(job_type)
        assert isinstance(defaults, TaskDefaults)
        part = getattr(defaults, _TASK_DEFAULT_PARTS[suffix])
        return format_go_duration(part) if suffix.startswith("Task.Timeouts") else _plain(part)
    if key == "JobAdmissionControl.RejectNetworkedJobs":
        return not config.accept_networked_jobs
    value = getattr(config, field)
    if field in _DURATION_FIELDS:
        return format_go_duration(value)
    if field.startswith("allocated_") and not value:
        share = 1.0 if field == "allocated_gpu" else config.capacity_fraction
        return f"{share * 100:g}%"
    return _plain(value)


def _plain(value: Any) -> Any:
    """A setting as YAML and JSON hold it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, ApprovalHookConfig):
        return {k.capitalize() if k != "url" else "URL": v for k, v in asdict(value).items()}
    if isinstance(value, ApiUserConfig):
        # Shown by `config list`: a plain-text password or an API key is a secret (a bcrypt
        # hash is not, and shows which one is in effect).
        shown = value.to_dict()
        for secret in ("APIKey", "Password"):
            if secret in shown and (secret == "APIKey" or value.plain_text_password):
                shown[secret] = REDACTED
        return shown
    return value
