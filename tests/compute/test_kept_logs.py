"""A finished execution's small output kept in the node's store, its results folder reused:
the logs read the same from either place (whole, tailed, followed), a folder a reader holds
stays, and large output keeps its folder (the reuse itself: ``test_spare_dirs``). Real
pipeline, store, shell and noop executors."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bacalhau.compute import ExecutionPipeline, ExecutionStore
from bacalhau.compute._logs import KEPT_LOGS_MAX, LOG_CHUNK_BYTES, logs_to_keep
from bacalhau.executor.noop import NoopExecutor
from bacalhau.models import (
    Execution,
    LocalExecutionState,
    LogChunk,
    LogRequest,
    LogStream,
    RunCommandResult,
)
from tests.compute.jobs import make_execution, noop_execution
from tests.compute.shell_executor import ShellExecutor
from tests.compute.waiting import eventually

L = LocalExecutionState


@dataclass
class Node:
    store: ExecutionStore
    pipeline: ExecutionPipeline
    root: Path

    async def run(self, execution: Execution) -> str:
        self.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        record = await self.pipeline.run(execution.id)
        await asyncio.sleep(0)  # what follows the outcome: the folder given back
        assert record.state is L.COMPLETED, record.message
        return execution.id

    async def logs(self, execution_id: str, **asked: Any) -> bytes:
        request = LogRequest(execution_id, **asked)
        chunks = [c async for c in self.pipeline.logs.chunks(request, finished=lambda: True)]
        return _joined(chunks, LogStream.STDOUT) + b"|" + _joined(chunks, LogStream.STDERR)


def _joined(chunks: list[LogChunk], stream: LogStream) -> bytes:
    parts = [c for c in chunks if c.stream is stream]
    if parts:  # contiguous, in order, from where the first starts
        offset = parts[0].offset
        for c in parts:
            assert c.offset == offset and len(c.data) <= LOG_CHUNK_BYTES
            offset += len(c.data)
    return b"".join(c.data for c in parts)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    with ExecutionStore(tmp_path / "compute.db") as store:
        pipeline = ExecutionPipeline(
            node_id="compute-node",
            store=store,
            executors={"noop": NoopExecutor(), "shell": ShellExecutor()},
            publishers={},
            results_root=tmp_path / "executions",
        )
        try:
            yield Node(store, pipeline, tmp_path / "executions")
        finally:
            pipeline.close()


async def test_small_output_is_read_from_the_store_once_the_folder_is_reused(node: Node) -> None:
    out = b"".join(f"line {i}\n".encode() for i in range(20_000))  # several chunks
    assert LOG_CHUNK_BYTES < len(out) < KEPT_LOGS_MAX
    first = await node.run(noop_execution(Stdout=out.decode(), Stderr="a\nb"))

    assert not (node.root / first).exists()
    assert node.store.kept_logs(first) == (out, b"a\nb")
    assert await node.logs(first) == out + b"|a\nb"
    assert await node.logs(first, follow=True) == out + b"|a\nb"
    assert await node.logs(first, tail=2) == b"line 19998\nline 19999\n|a\nb"
    # A follower resuming reads on from its bytes, the tail aside.
    at = len(out) - len(b"line 19999\n")
    assert await node.logs(first, tail=5, stdout_from=at, stderr_from=2) == b"line 19999\n|b"

    # The next execution's folder (a spare, maybe this one) is none the worse for it.
    second = await node.run(noop_execution(Stdout="second\n"))
    assert await node.logs(second) == b"second\n|"
    assert await node.logs(first, tail=1) == b"line 19999\n|b"


async def test_a_folder_a_reader_holds_is_not_reused(node: Node) -> None:
    # The follower opens the folder while the run prints; the run ends while it reads.
    execution = make_execution("for i in 1 2 3 4 5; do echo line-$i; sleep 0.05; done")
    node.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
    run = asyncio.create_task(node.pipeline.run(execution.id))
    await eventually(lambda: (node.root / execution.id / "stdout").exists())

    def finished() -> bool:
        state = node.store.state(execution.id)
        return state is not None and state.is_terminal()

    chunks = [
        c
        async for c in node.pipeline.logs.chunks(
            LogRequest(execution.id, follow=True), finished=finished
        )
    ]
    record = await run

    assert record.state is L.COMPLETED
    expected = b"".join(f"line-{i}\n".encode() for i in range(1, 6))
    assert _joined(chunks, LogStream.STDOUT) == expected
    # Kept in the store all the same, but the folder stayed: it was being read.
    assert node.store.kept_logs(execution.id) == (expected, b"")
    assert (node.root / execution.id / "stdout").read_bytes() == expected
    assert await node.logs(execution.id) == expected + b"|"


async def test_large_output_keeps_its_folder(node: Node) -> None:
    big = "x" * KEPT_LOGS_MAX + "\n"
    execution_id = await node.run(noop_execution(Stdout=big))

    assert node.store.kept_logs(execution_id) is None
    assert (node.root / execution_id / "stdout").read_text() == big
    assert await node.logs(execution_id, tail=1) == big.encode() + b"|"


def test_only_the_layouts_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_bytes(b"out")
    (tmp_path / "stderr").write_bytes(b"")
    assert logs_to_keep(tmp_path) == (b"out", b"")  # exitCode may be gone already
    (tmp_path / "exitCode").write_text("0")
    assert logs_to_keep(tmp_path) == (b"out", b"")
    assert logs_to_keep(tmp_path, limit=2) is None
    (tmp_path / "outputs").mkdir()
    assert logs_to_keep(tmp_path) is None
    assert logs_to_keep(tmp_path / "missing") is None


def test_an_older_store_gains_the_logs_and_kept_results_tables(tmp_path: Path) -> None:
    path = tmp_path / "compute.db"
    ExecutionStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE logs")
        db.execute("DROP TABLE kept_results")
        db.execute("PRAGMA user_version=2")
    with ExecutionStore(path) as store:
        assert store.kept_logs("e-none") is None
        assert store.kept_results("e-none") is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)


def test_an_older_store_keeps_the_output_its_finished_executions_recorded(tmp_path: Path) -> None:
    """A store of before schema 3 had no ``logs``: a finished execution's output was in its
    results folder, gone once that node forgot it, and in ``run_output`` (its first bytes).
    Those are kept, so ``job logs`` shows them rather than nothing."""
    path = tmp_path / "compute.db"
    with ExecutionStore(path) as store:
        done = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        done = store.transition(done, L.RUNNING)
        store.transition(
            done, L.COMPLETED, run_output=RunCommandResult(stdout="v3-done\n", stderr="warn\n")
        )
        store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE logs")
        db.execute("PRAGMA user_version=2")
    with ExecutionStore(path) as store:
        assert store.kept_logs(done.id) == (b"v3-done\n", b"warn\n")
        assert [r.id for r in store.executions() if store.kept_logs(r.id) is not None] == [done.id]
