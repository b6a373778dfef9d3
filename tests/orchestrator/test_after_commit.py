"""What waits for the job store's transaction to commit (a message naming what it wrote)
runs after the commit, and never if the writes are undone: the transaction's, or the
nested block's that asked, whose ``otherwise`` runs instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.orchestrator import JobStore


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    s = JobStore(tmp_path / "jobs.db")
    yield s  # type: ignore[misc]
    s.close()


def test_it_runs_after_the_commit_or_at_once_outside_a_transaction(store: JobStore) -> None:
    ran: list[str] = []
    store.after_commit(lambda: ran.append("outside"))
    assert ran == ["outside"]
    with store.transaction():
        store.after_commit(lambda: ran.append("outer"))
        with store.transaction():
            store.after_commit(lambda: ran.append("nested"))
        assert ran == ["outside"]  # not before the commit
    assert ran == ["outside", "outer", "nested"]


def test_a_rolled_back_transaction_runs_otherwise(store: JobStore) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), store.transaction():
        store.after_commit(lambda: ran.append("sent"), otherwise=lambda: ran.append("undone"))
        raise RuntimeError("boom")
    assert ran == ["undone"]
    with store.transaction():
        pass
    assert ran == ["undone"]  # dropped, not carried into the next transaction


def test_an_undone_nested_block_drops_only_its_own(store: JobStore) -> None:
    ran: list[str] = []
    with store.transaction():
        store.after_commit(lambda: ran.append("kept"), otherwise=lambda: ran.append("x"))
        with pytest.raises(RuntimeError), store.transaction():
            store.after_commit(lambda: ran.append("sent"), otherwise=lambda: ran.append("undone"))
            raise RuntimeError("boom")
        assert ran == ["undone"]
    assert ran == ["undone", "kept"]
