"""WASM engine params (``Engine.Params``), decoded case-insensitively as Bacalhau does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import InputSource, Obj, SpecConfig

ENGINE_TYPE = "wasm"
DEFAULT_ENTRY_POINT = "_start"
#: argv[0] of every module: the name the entry module is mounted under.
PROGRAM_NAME = "main.wasm"
_FIELD = "Engine.Params"


@dataclass(frozen=True, slots=True)
class WasmEngineSpec:
    """The parsed ``{"Type": "wasm", "Params": {...}}`` of a task."""

    entry_module: InputSource
    entry_point: str
    parameters: list[str]
    environment: dict[str, str]

    @classmethod
    def from_spec(cls, engine: SpecConfig) -> WasmEngineSpec:
        """Parse and check the engine spec; raise :class:`InvalidJobSpec` naming the field."""
        if engine.type.lower() != ENGINE_TYPE:
            raise InvalidJobSpec(
                f"engine type {engine.type!r} cannot run on the wasm executor",
                field="Engine.Type",
            )
        params = Obj(engine.params, _FIELD)
        raw_module = params.raw("EntryModule")
        if not isinstance(raw_module, Mapping) or not raw_module:
            raise InvalidJobSpec(
                "wasm engine needs an entry module",
                field=f"{_FIELD}.EntryModule",
                hint="pass a .wasm file to `bacalhau wasm run`",
            )
        entry_module = InputSource.from_obj(params.get_obj("EntryModule"))
        if not entry_module.source.type:
            raise InvalidJobSpec(
                "the entry module has no source type",
                field=f"{_FIELD}.EntryModule.Source.Type",
            )
        if params.get_list("ImportModules"):
            raise InvalidJobSpec(
                "ImportModules are not supported by this node",
                field=f"{_FIELD}.ImportModules",
                hint="link the imported modules into the entry module before submitting",
            )
        entry_point = params.get_str("EntryPoint") or DEFAULT_ENTRY_POINT
        return cls(
            entry_module=entry_module,
            entry_point=entry_point,
            parameters=params.str_list("Parameters"),
            environment=params.str_map("EnvironmentVariables"),
        )

    def argv(self) -> list[str]:
        return [PROGRAM_NAME, *self.parameters]

    def merged_env(self, task_env: Mapping[str, str]) -> list[tuple[str, str]]:
        """The task's env overridden by the engine's, in sorted key order (as Bacalhau)."""
        env = dict(task_env)
        env.update(self.environment)
        return sorted(env.items())
