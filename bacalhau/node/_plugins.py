"""Plugins registered by name: the one place that maps engine/publisher names to classes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bacalhau.errors import InvalidConfiguration
from bacalhau.executor import DockerExecutor, Executor, NoopExecutor, WasmExecutor


def build_executors(
    names: Iterable[str], *, allow_image_pull: bool, node_id: str
) -> dict[str, Executor]:
    """Instantiate the executors a compute node offers, by name.

    Container names carry a per-node prefix: several compute nodes may share one Docker
    engine, and a node cleaning up its leftovers must never touch a sibling's containers.
    """
    prefix = f"bacalhau-{node_id[-8:].lower()}"
    registry: dict[str, Callable[[], Executor]] = {
        "docker": lambda: DockerExecutor(allow_pull=allow_image_pull, name_prefix=prefix),
        "wasm": WasmExecutor,
        "noop": NoopExecutor,
    }
    out: dict[str, Executor] = {}
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        factory = registry.get(name)
        if factory is None:
            raise InvalidConfiguration(
                f"unknown execution engine {raw!r}",
                hint="choose from: " + ", ".join(sorted(registry)),
            )
        out[name] = factory()
    if not out:
        raise InvalidConfiguration("a compute node needs at least one execution engine")
    return out
