"""The requester's bid approval hooks as the operator configures them
(``Orchestrator.ApprovalHooks``: a list of ``{Name, Type, Command or URL, Timeout}``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bacalhau._yaml import load_yaml
from bacalhau.errors import InvalidRequest

_HOOK_TYPES = ("exec", "http")


@dataclass(frozen=True, slots=True)
class ApprovalHookConfig:
    """One requester-side bid approval hook: ``{"Name", "Type": exec|http, "Command" or
    "URL", "Timeout"}`` (keys in any case; ``Timeout`` in seconds)."""

    name: str
    type: str
    command: str = ""
    url: str = ""
    timeout: float = 10.0

    @classmethod
    def parse_list(cls, key: str, value: Any) -> tuple[ApprovalHookConfig, ...]:
        """A list of hooks from the config file (YAML) or ``-c Key=[...]`` (JSON/YAML
        text); errors name the key and the hook."""
        if isinstance(value, str):
            try:
                value = load_yaml(value) if value.strip() else []
            except yaml.YAMLError as exc:
                raise InvalidRequest(
                    f"{key} is not a JSON or YAML list: {exc}", details={"Field": key}
                ) from None
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise InvalidRequest(f"{key} must be a list of hooks", details={"Field": key})
        hooks = tuple(cls._parse_one(f"{key}[{i}]", item) for i, item in enumerate(value))
        names = [h.name for h in hooks]
        for name in names:
            if names.count(name) > 1:
                raise InvalidRequest(f"{key} names the hook {name!r} twice", details={"Field": key})
        return hooks

    @classmethod
    def _parse_one(cls, where: str, item: Any) -> ApprovalHookConfig:
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{where} must be a mapping", details={"Field": where})
        raw = {str(k).lower(): v for k, v in item.items()}
        unknown = sorted(set(raw) - {"name", "type", "command", "url", "timeout"})
        if unknown:
            raise InvalidRequest(
                f"{where} has unknown keys: {', '.join(unknown)}",
                hint="a hook has Name, Type (exec or http), Command or URL, and Timeout",
                details={"Field": where},
            )
        name = str(raw.get("name") or "").strip()
        kind = str(raw.get("type") or "").strip().lower()
        if not name:
            raise InvalidRequest(f"{where} needs a Name", details={"Field": f"{where}.Name"})
        if kind not in _HOOK_TYPES:
            raise InvalidRequest(
                f"{where}.Type must be exec or http, not {raw.get('type')!r}",
                details={"Field": f"{where}.Type"},
            )
        command, url = str(raw.get("command") or ""), str(raw.get("url") or "")
        if kind == "exec" and not command.strip():
            raise InvalidRequest(
                f"the exec hook {name!r} needs a Command", details={"Field": f"{where}.Command"}
            )
        if kind == "http" and not url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"the http hook {name!r} needs an http(s) URL", details={"Field": f"{where}.URL"}
            )
        try:
            timeout = float(raw.get("timeout", 10.0))
        except (TypeError, ValueError):
            timeout = -1.0
        if not timeout > 0:
            raise InvalidRequest(
                f"{where}.Timeout must be a positive number of seconds",
                details={"Field": f"{where}.Timeout"},
            )
        return cls(name=name, type=kind, command=command, url=url, timeout=timeout)
