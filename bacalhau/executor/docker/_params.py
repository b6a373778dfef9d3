"""Docker engine params (``Engine.Params``), decoded case-insensitively as Bacalhau does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import SpecConfig, param

ENGINE_TYPE = "docker"
_FIELD = "Engine.Params"


def _str_list(params: Mapping[str, Any], key: str) -> list[str]:
    value = param(params, key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidJobSpec(f"{key} must be a list of strings", field=f"{_FIELD}.{key}")
    return list(value)


@dataclass(frozen=True, slots=True)
class DockerEngineSpec:
    """The parsed ``{"Type": "docker", "Params": {...}}`` of a task."""

    image: str
    #: Replaces the image's ENTRYPOINT when non-empty.
    entrypoint: list[str]
    #: The container's command (``Cmd``); the image's CMD when empty.
    parameters: list[str]
    #: ``(key, value)`` pairs from ``EnvironmentVariables`` (``"K=V"`` on the wire).
    environment: list[tuple[str, str]]
    working_directory: str

    @classmethod
    def from_spec(cls, engine: SpecConfig) -> DockerEngineSpec:
        """Parse and check the engine spec; raise :class:`InvalidJobSpec` naming the field."""
        if engine.type.lower() != ENGINE_TYPE:
            raise InvalidJobSpec(
                f"engine type {engine.type!r} cannot run on the docker executor",
                field="Engine.Type",
            )
        params = engine.params
        image = param(params, "Image")
        if not isinstance(image, str) or not image.strip():
            raise InvalidJobSpec(
                "docker engine needs an image",
                field=f"{_FIELD}.Image",
                hint="name an image, e.g. ubuntu:24.04 or local/busybox:1.37",
            )
        environment: list[tuple[str, str]] = []
        for i, item in enumerate(_str_list(params, "EnvironmentVariables")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InvalidJobSpec(
                    f"environment variable {item!r} is not of the form KEY=VALUE",
                    field=f"{_FIELD}.EnvironmentVariables[{i}]",
                )
            environment.append((key, value))
        workdir = param(params, "WorkingDirectory")
        if workdir is None:
            workdir = ""
        if not isinstance(workdir, str) or (workdir and not workdir.startswith("/")):
            raise InvalidJobSpec(
                "WorkingDirectory must be an absolute path",
                field=f"{_FIELD}.WorkingDirectory",
            )
        return cls(
            image=image.strip(),
            entrypoint=_str_list(params, "Entrypoint"),
            parameters=_str_list(params, "Parameters"),
            environment=environment,
            working_directory=workdir,
        )

    def merged_env(self, task_env: Mapping[str, str]) -> list[str]:
        """The container environment: the task's env, overridden by the engine's."""
        env = dict(task_env)
        env.update(self.environment)
        return [f"{k}={v}" for k, v in env.items()]
