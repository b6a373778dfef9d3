"""Fixtures for the integration tests: one shared devstack per test worker, the local image
and the WASI test programs.

The devstack is session-scoped: every test that can share a cluster does, and the modules
are grouped (``xdist_group``) so that, under ``--dist loadgroup``, each group runs on one
worker and at most one shared devstack starts per worker. Tests never assume they own it:
they look only at their own jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executor.conftest import busybox_image, wasm_modules
from tests.integration.devstack import Devstack

__all__ = ["busybox_image", "devstack", "wasm_modules"]

COMPUTE_NODES = 2


@pytest.fixture(scope="session")
def devstack(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: str, wasm_modules: Path
) -> Iterator[Devstack]:
    """A running ``bacalhau devstack`` with two compute nodes offering docker and wasm."""
    stack = Devstack.start(tmp_path_factory.mktemp("devstack"), compute_nodes=COMPUTE_NODES)
    try:
        yield stack
    finally:
        stack.stop()
