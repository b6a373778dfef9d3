"""Noop engine params: what the pretend job prints, writes, how long it takes and how it ends."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Obj, SpecConfig

ENGINE_TYPE = "noop"
_FIELD = "Engine.Params"


@dataclass(frozen=True, slots=True)
class NoopEngineSpec:
    """The parsed ``{"Type": "noop", "Params": {...}}`` of a task; every param is optional."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    sleep_seconds: float = 0.0
    #: Non-empty: the run fails with this ``error_msg`` (after writing its results).
    error_message: str = ""
    #: ``(result name, path relative to its folder, content)``.
    result_files: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def from_spec(cls, engine: SpecConfig) -> NoopEngineSpec:
        """Parse and check the engine spec; raise :class:`InvalidJobSpec` naming the field."""
        if engine.type.lower() != ENGINE_TYPE:
            raise InvalidJobSpec(
                f"engine type {engine.type!r} cannot run on the noop executor",
                field="Engine.Type",
            )
        params = Obj(engine.params, _FIELD)
        sleep = params.get_float("SleepSeconds")
        if sleep < 0:
            raise InvalidJobSpec("SleepSeconds must be >= 0", field=f"{_FIELD}.SleepSeconds")
        files: list[tuple[str, str, str]] = []
        for key, content in sorted(params.str_map("ResultFiles").items()):
            name, _, rel = key.partition("/")
            norm = posixpath.normpath(rel) if rel else ""
            if not name or not rel or norm.startswith(("/", "..")) or norm == ".":
                raise InvalidJobSpec(
                    f"result file {key!r} must be <result name>/<relative path>",
                    field=f"{_FIELD}.ResultFiles",
                )
            files.append((name, norm, content))
        return cls(
            stdout=params.get_str("Stdout"),
            stderr=params.get_str("Stderr"),
            exit_code=params.get_int("ExitCode"),
            sleep_seconds=sleep,
            error_message=params.get_str("ErrorMessage"),
            result_files=tuple(files),
        )
