from __future__ import annotations

from pathlib import Path

import pytest

from tests.transport.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


@pytest.fixture
def foreign_cluster(tmp_path: Path) -> Cluster:
    """A second, unrelated cluster with its own CA."""
    return Cluster(tmp_path, "foreign")
