"""Fixtures for the executor tests: a real Docker engine with the local test image, real
WASI modules compiled from scripts/wasm/, and request builders.

Both build scripts are idempotent; a file lock keeps parallel test workers from running them
at the same time.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from bacalhau.executor import RunRequest
from bacalhau.models import SpecConfig

REPO = Path(__file__).resolve().parents[2]
BUSYBOX_IMAGE = "local/busybox:1.37"
WASM_DIR = REPO / ".build" / "wasm"


@contextmanager
def _build_lock(name: str) -> Iterator[None]:
    lock_path = Path(tempfile.gettempdir()) / f"bacalhau-tests-{name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _image_present(image: str) -> bool:
    probe = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def busybox_image() -> str:
    """The local busybox image, built (and the engine started) by scripts/build_images.sh."""
    with _build_lock("images"):
        if not _image_present(BUSYBOX_IMAGE):
            subprocess.run([str(REPO / "scripts" / "build_images.sh")], check=True, timeout=600)
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def wasm_modules() -> Path:
    """The directory holding the compiled test programs (``hello.wasm``, ...)."""
    with _build_lock("wasm"):
        subprocess.run([str(REPO / "scripts" / "build_wasm.sh")], check=True, timeout=600)
    return WASM_DIR


@pytest.fixture
def module(wasm_modules: Path) -> Callable[[str], bytes]:
    """Reads a compiled test program by name: ``module("hello")``."""
    return lambda name: (wasm_modules / f"{name}.wasm").read_bytes()


def new_request(
    tmp_path: Path, engine_type: str, params: Mapping[str, object], **kwargs: object
) -> RunRequest:
    """A request with fresh IDs and a fresh results directory under ``tmp_path``."""
    execution_id = f"e-{uuid.uuid4()}"
    return RunRequest(
        execution_id=execution_id,
        job_id=f"j-{uuid.uuid4()}",
        engine=SpecConfig(type=engine_type, params=dict(params)),
        results_dir=tmp_path / execution_id,
        **kwargs,  # type: ignore[arg-type]
    )


#: Capped result folders mount a filesystem, which needs root. Skipped only without root;
#: as root a missing mkfs.ext4 (setup installs e2fsprogs) fails the tests instead of hiding
#: the disk cap (test_docker_isolation checks it).
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="capped result folders mount a filesystem: that needs root"
)


def mounts_under(path: Path) -> list[str]:
    """The mount points under ``path`` (a capped result filesystem still mounted)."""
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]
