"""A requester whose store files are damaged says which file and what to do, rather than
failing with a traceback (as a compute node already did for its execution store)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.errors import Unavailable
from bacalhau.orchestrator import JobStore
from bacalhau.orchestrator._approvals import ApprovalStore


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_job_store_is_named_with_a_hint(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "jobs.db"
    JobStore(path).close()
    if damage == "garbage":
        path.write_bytes(os.urandom(327_680))
    else:
        with open(path, "r+b") as f:
            f.truncate(4096)
    with pytest.raises(Unavailable) as refused:
        JobStore(path)
    assert f"cannot open the job store {path}: " in str(refused.value)
    assert "backup" in (refused.value.hint or "")


def test_damaged_node_approvals_are_named_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "nodes.db"
    path.write_bytes(os.urandom(12_288))
    with pytest.raises(Unavailable) as refused:
        ApprovalStore(path)
    assert f"cannot open the node approvals {path}: " in str(refused.value)
