"""Compute-side retention: finished executions past the configured age are forgotten with
their files (results folder or the logs kept in the store, the local publisher's archive), in
small batches; those still to be reported, and younger ones, stay. Real endpoint, store, noop
executor and local publisher; the age is set short (or the clock of a sweep moved), never
slept through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bacalhau.compute import (
    DEFAULT_EXECUTION_RETENTION,
    Bidder,
    CapacityTracker,
    ComputeEndpoint,
    ExecutionPipeline,
    ExecutionRetention,
    ExecutionStore,
    RequesterTrust,
    default_strategies,
)
from bacalhau.compute._logs import KEPT_LOGS_MAX
from bacalhau.config import NodeConfig
from bacalhau.executor.noop import NoopExecutor
from bacalhau.models import AskForBidRequest, LocalExecutionState, Resources, RunResult, now_ns
from bacalhau.publisher import LocalPublisher
from bacalhau.publisher._archive_store import ArchiveStore
from tests.compute.jobs import noop_execution
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.waiting import eventually

REQUESTER = "requester-1"
ROOMY = Resources(cpu=8, memory=16 * 2**30, disk=10**11)
DAY = 24 * 3600 * 10**9


@dataclass
class Node:
    endpoint: ComputeEndpoint
    callbacks: RecordingCallbacks
    results: Path
    published: Path

    async def run(self, **params: object) -> str:
        """Run a noop execution published locally to completion (reported); its ID."""
        execution = noop_execution(publisher="local", **params)
        execution.node_id = "compute-node"
        await self.endpoint.ask_for_bid(REQUESTER, AskForBidRequest(execution, False))
        await self.callbacks.wait_for(execution.id, RunResult)
        await eventually(lambda: not self.endpoint.store.unsettled_ids())
        return execution.id

    def files_of(self, execution_id: str) -> list[Path]:
        return [self.results / execution_id, self.published / f"{execution_id}.tar.gz"]


@asynccontextmanager
async def compute_node(
    tmp: Path, archives: ArchiveStore | None = None, **settings: float
) -> AsyncIterator[Node]:
    published = tmp / "published"
    executors = {"noop": NoopExecutor()}
    local = LocalPublisher(directory=published, address="127.0.0.1", port=6001, archives=archives)
    publishers = {"local": local}
    callbacks = RecordingCallbacks()
    with ExecutionStore(tmp / "compute.db") as store:
        endpoint = ComputeEndpoint(
            node_id="compute-node",
            store=store,
            bidder=Bidder(
                node_id="compute-node",
                strategies=default_strategies(
                    executors=executors, publishers=publishers, max_job_requirements=ROOMY
                ),
            ),
            pipeline=ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors=executors,
                publishers=publishers,
                results_root=tmp / "executions",
            ),
            callbacks=callbacks,
            capacity=CapacityTracker(ROOMY),
            trust=RequesterTrust([REQUESTER]),
            callback_initial_backoff=0.01,
            published_paths=lambda execution_id: [published / f"{execution_id}.tar.gz"],
            forget_published=local.forget,
            **settings,
        )
        async with endpoint:
            yield Node(endpoint, callbacks, tmp / "executions", published)


async def test_expired_executions_are_forgotten_with_their_files_in_the_background(
    tmp_path: Path,
) -> None:
    async with compute_node(tmp_path, retention=2.0, housekeeping_interval=0.05) as node:
        # Output too large for the store: the results folders keep it.
        ids = [await node.run(Stdout="x" * KEPT_LOGS_MAX + f"run {n}\n") for n in range(3)]
        for execution_id in ids:
            assert all(path.exists() for path in node.files_of(execution_id))

        files = [path for execution_id in ids for path in node.files_of(execution_id)]
        await eventually(lambda: not node.endpoint.store.executions())
        await eventually(lambda: not any(path.exists() for path in files))


async def test_small_archives_kept_as_rows_are_forgotten_with_their_executions(
    tmp_path: Path,
) -> None:
    archives = ArchiveStore(tmp_path / "published")
    try:
        async with compute_node(
            tmp_path, archives, retention=2.0, housekeeping_interval=0.05
        ) as node:
            ids = [await node.run(Stdout=f"run {n}\n") for n in range(3)]
            for execution_id in ids:
                assert archives.get(f"{execution_id}.tar.gz") is not None
                assert not (node.published / f"{execution_id}.tar.gz").exists()
            await eventually(lambda: not node.endpoint.store.executions())
            await eventually(lambda: all(archives.get(f"{e}.tar.gz") is None for e in ids))
    finally:
        archives.close()


async def test_a_week_by_default_in_batches_keeping_younger_and_unreported_ones(
    tmp_path: Path,
) -> None:
    assert NodeConfig().job_retention == DEFAULT_EXECUTION_RETENTION == 7 * 24 * 3600
    async with compute_node(tmp_path) as node:
        retention = node.endpoint.retention
        store = node.endpoint.store
        assert retention.max_age == DEFAULT_EXECUTION_RETENTION
        ids = [await node.run() for _ in range(5)]
        assert all(store.kept_logs(execution_id) == (b"", b"") for execution_id in ids)
        # One more whose result the requester has not had yet (it cannot be reached).
        node.callbacks.fail_first = node.callbacks.attempts + 10**6
        unreported = noop_execution(publisher="local")
        unreported.node_id = "compute-node"
        await node.endpoint.ask_for_bid(REQUESTER, AskForBidRequest(unreported, False))
        await eventually(
            lambda: (
                (r := store.find(unreported.id)) is not None
                and r.state is LocalExecutionState.COMPLETED
            )
        )

        now = now_ns()
        assert await retention.sweep(now=now + 6 * DAY) == 0
        assert len(store.executions()) == 6

        # Past the week: forgotten two per transaction, the loop free between batches.
        in_batches = ExecutionRetention(store, paths_of=node.files_of, batch=2)
        assert await in_batches.sweep(now=now + 8 * DAY) == 5
        assert [r.id for r in store.executions()] == [unreported.id]
        for execution_id in ids:
            assert not any(path.exists() for path in node.files_of(execution_id))
            assert store.kept_logs(execution_id) is None
        # Its output is small: kept in the store (its folder reused), and kept there still.
        assert store.kept_logs(unreported.id) == (b"", b"")
        assert (node.published / f"{unreported.id}.tar.gz").exists()
        node.callbacks.fail_first = 0  # reachable again: the node stops without waiting
