"""The generated protobuf code is fresh, and only the two edges import it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Packages allowed to import bacalhau._proto (ARCHITECTURE.md: "Protobuf only at the edges").
EDGES = {"transport", "api", "_proto"}
#: The SDK's client of the public gRPC API is an edge of its own: the client and its channel.
EDGE_MODULES = {
    "client/_grpc.py",
    "client/_grpc_channel.py",
    "client/_grpc_cluster.py",
    "client/_grpc_data.py",
}


@pytest.mark.timeout(120)
def test_checked_in_code_matches_the_protos() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "codegen.sh"), "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_edges_import_generated_code() -> None:
    offenders = []
    for path in (ROOT / "bacalhau").rglob("*.py"):
        package = path.relative_to(ROOT / "bacalhau").parts[0]
        if package in EDGES or path.relative_to(ROOT / "bacalhau").as_posix() in EDGE_MODULES:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "bacalhau._proto" or n.startswith("bacalhau._proto.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
