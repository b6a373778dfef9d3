"""gossip/ is the pure protocol core: it imports models and identity, never transport or
generated code (ARCHITECTURE.md: its wire adapter lives in transport/)."""

from __future__ import annotations

import ast
from pathlib import Path

GOSSIP = Path(__file__).resolve().parents[2] / "bacalhau" / "gossip"
ALLOWED = {"bacalhau.gossip", "bacalhau.models", "bacalhau.identity", "bacalhau.errors"}
#: Nothing in the core may touch the network or the clock itself; only the asyncio driver
#: runs real time, and it reaches the network through an injected Protocol.
IMPURE = {"socket", "asyncio", "time", "grpc", "threading", "selectors"}
DRIVER = "_runner.py"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_gossip_imports_only_what_lies_below_it() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in GOSSIP.glob("*.py")
        for name in _imports(path)
        if name.startswith("bacalhau")
        and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
    }
    assert offenders == set()


def test_the_core_is_pure() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in GOSSIP.glob("*.py")
        if path.name != DRIVER
        for name in _imports(path)
        if name.split(".")[0] in IMPURE
    }
    assert offenders == set()
