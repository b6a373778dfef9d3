"""Fixtures of the CID store tests: the reference JS tools and generated input trees."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent.parent / "js"
CHUNK = 262_144

RunJs = Callable[..., dict[str, Any]]


def seeded_bytes(seed: str, size: int) -> bytes:
    """Reproducible pseudo-random content (incompressible, so no chunk repeats)."""
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="session")
def run_js() -> RunJs:
    """Run one of the reference scripts in tests/storage/js; returns its JSON output.

    The npm packages are installed by scripts/setup.sh; a missing install is done here
    (`npm ci`, pinned by the lock file) rather than skipped."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run scripts/setup.sh")
    if not (JS_DIR / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)

    def run(script: str, *args: str | os.PathLike[str]) -> dict[str, Any]:
        done = subprocess.run(
            ["node", str(JS_DIR / script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return run


def tree_snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``root``: kind and content (file bytes, symlink target)."""
    out: dict[str, tuple[str, bytes]] = {}
    if root.is_symlink():
        return {"": ("symlink", os.fsencode(os.readlink(root)))}
    if root.is_file():
        return {"": ("file", root.read_bytes())}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("symlink", os.fsencode(os.readlink(path)))
            elif path.is_dir():
                out[rel] = ("dir", b"")
            else:
                out[rel] = ("file", path.read_bytes())
    return out


def make_small_tree(root: Path) -> Path:
    """Nested directories with unicode names, empty files and directories, hidden entries,
    symlinks (relative, absolute, dangling) and a multi-chunk file."""
    root.mkdir(parents=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "three-chunks.bin").write_bytes(seeded_bytes("three", 2 * CHUNK + 7))
    (root / "empty-dir").mkdir()
    nested = root / "ünïcødé" / "日本語" / "deeper"
    nested.mkdir(parents=True)
    (nested / "ñ.txt").write_bytes("señal ✓\n".encode())
    (root / "ünïcødé" / "Cafe\u0301").write_bytes(b"decomposed")  # no NFC normalisation
    (root / "ünïcødé" / "empty-too").mkdir()
    (root / ".hidden").write_bytes(b"secret")
    (root / ".hidden-dir").mkdir()
    (root / ".hidden-dir" / "inside").write_bytes(b"x")
    os.symlink("hello.txt", root / "link-to-hello")
    os.symlink("/etc/passwd", root / "link-absolute")
    os.symlink("../../nowhere", root / "ünïcødé" / "dangling")
    return root
