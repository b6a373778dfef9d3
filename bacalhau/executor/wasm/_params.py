"""WASM engine params (``Engine.Params``), decoded case-insensitively as Bacalhau does.

Two shapes of module reference are accepted, as Bacalhau's own files use both:

- the object form (v1.0-v1.6): ``EntryModule`` and each of ``ImportModules`` is an
  InputSource (``{"Source": ..., "Alias": ..., "Target": ...}``) of its own;
- the name form (v1.7+): each is a string naming a path among the task's input sources'
  ``Target``s (a leading ``/`` optional, see ``models._module_paths``), which the node
  prepares like any other input.

An import module is known to the entry module's imports by its *name*: its ``Alias`` (as
Bacalhau resolves imports), else its ``Target``.

``Deterministic`` (a boolean, ours) asks for a run whose every ambient input (clock, random
bytes) is a function of the job alone; see ``_determinism``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import InputSource, Obj, SpecConfig, inputs_named_whole

ENGINE_TYPE = "wasm"
DEFAULT_ENTRY_POINT = "_start"
#: argv[0] of every module: the name the entry module is mounted under.
PROGRAM_NAME = "main.wasm"
#: The engine param that asks for a deterministic run.
DETERMINISTIC_PARAM = "Deterministic"
_FIELD = "Engine.Params"


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """A module the spec names: an InputSource of its own, or a task input by its target."""

    #: What other modules import it as (its Alias, else its Target).
    name: str
    #: Where the node mounts it among the prepared inputs.
    target: str
    #: Its own source (object form); None when it names a task input (name form).
    source: InputSource | None
    #: The spec field that names it, for errors.
    field: str

    @property
    def is_inline(self) -> bool:
        return self.source is not None and self.source.source.type.lower() == "inline"


@dataclass(frozen=True, slots=True)
class WasmEngineSpec:
    """The parsed ``{"Type": "wasm", "Params": {...}}`` of a task."""

    entry_module: ModuleRef
    entry_point: str
    parameters: list[str]
    environment: dict[str, str]
    import_modules: list[ModuleRef]
    deterministic: bool = False

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
        if not raw_module or not isinstance(raw_module, (Mapping, str)):
            raise InvalidJobSpec(
                "wasm engine needs an entry module",
                field=f"{_FIELD}.EntryModule",
                hint="pass a .wasm file to `bacalhau wasm run`",
            )
        entry_module = _module_ref(raw_module, f"{_FIELD}.EntryModule")
        imports = [
            _module_ref(item, f"{_FIELD}.ImportModules[{i}]")
            for i, item in enumerate(params.get_list("ImportModules"))
        ]
        seen: set[str] = set()
        for ref in imports:
            if ref.name in seen:
                raise InvalidJobSpec(
                    f"two import modules are named {ref.name!r}",
                    field=ref.field,
                    hint="give each import module its own Alias",
                )
            seen.add(ref.name)
        entry_point = params.get_str("EntryPoint") or DEFAULT_ENTRY_POINT
        return cls(
            entry_module=entry_module,
            entry_point=entry_point,
            parameters=params.str_list("Parameters"),
            environment=params.str_map("EnvironmentVariables"),
            import_modules=imports,
            deterministic=params.get_bool(DETERMINISTIC_PARAM),
        )

    def argv(self) -> list[str]:
        return [PROGRAM_NAME, *self.parameters]

    def merged_env(self, task_env: Mapping[str, str]) -> list[tuple[str, str]]:
        """The task's env overridden by the engine's, in sorted key order (as Bacalhau)."""
        env = dict(task_env)
        env.update(self.environment)
        return sorted(env.items())

    def module_targets(self, input_targets: Sequence[str]) -> set[str]:
        """Of ``input_targets``, those that hold a module rather than data for the module to
        read: each a module names whole (one naming a file inside an input leaves that input
        mounted as data)."""
        refs = (self.entry_module, *self.import_modules)
        own = {ref.target for ref in refs if ref.source is not None}
        named = inputs_named_whole((r.target for r in refs if r.source is None), input_targets)
        return (own | named) - {""}

    def module_names(self) -> set[str]:
        """The names the modules are given by (an input's Alias, or a path)."""
        return {r.target for r in (self.entry_module, *self.import_modules) if r.source is None}


def _module_ref(raw: object, field: str) -> ModuleRef:
    if isinstance(raw, str):
        if not raw.strip():
            raise InvalidJobSpec("a module name must not be empty", field=field)
        return ModuleRef(name=raw, target=raw, source=None, field=field)
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidJobSpec(
            "a module must be an input source or the target of one of the task's inputs",
            field=field,
        )
    source = InputSource.from_obj(Obj(raw, field))
    if not source.source.type:
        raise InvalidJobSpec("the module has no source type", field=f"{field}.Source.Type")
    return ModuleRef(
        name=source.alias or source.target, target=source.target, source=source, field=field
    )
