"""storage/ lies just above models (ARCHITECTURE.md): it imports models and errors of ours,
never the generated protobuf code nor the layers that use it."""

from __future__ import annotations

import ast
from pathlib import Path

STORAGE = Path(__file__).resolve().parents[2] / "bacalhau" / "storage"
# (bacalhau._tarfile is the standard library's module, chosen by Python version, and
# bacalhau._lazy and bacalhau._processes helpers importing nothing of ours: no layers.)
ALLOWED = {
    "bacalhau.storage",
    "bacalhau.models",
    "bacalhau.errors",
    "bacalhau._tarfile",
    "bacalhau._lazy",
    "bacalhau._processes",
}
LEAVES = [STORAGE.parent / "_lazy.py", STORAGE.parent / "_processes.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_storage_imports_only_what_lies_below_it() -> None:
    offenders = {
        f"{path.relative_to(STORAGE)}: {name}"
        for path in STORAGE.rglob("*.py")
        for name in _imports(path)
        if name.startswith("bacalhau")
        and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
    }
    assert offenders == set()
    assert len(list(STORAGE.rglob("*.py"))) >= 9
    for leaf in LEAVES:
        assert not {n for n in _imports(leaf) if n.startswith("bacalhau")}, leaf
