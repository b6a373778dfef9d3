"""A compute node whose disk fills up while an execution runs still records and reports the
execution's end once it can: a failure its store could not write used to leave the
execution Running for good, here and on the requester."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.models import ComputeFailure, LocalExecutionState
from tests.compute.jobs import noop_execution
from tests.compute.test_endpoint import NodeFactory, compute_node
from tests.compute.waiting import eventually
from tests.small_disk import FILLER, fill, needs_root, small_tmpfs

__all__ = ["compute_node"]

L = LocalExecutionState

pytestmark = needs_root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "8m") as disk:
        yield disk


async def test_a_failure_the_full_store_cannot_write_is_recorded_and_reported_later(
    compute_node: NodeFactory, small_disk: Path
) -> None:
    async with compute_node(db=small_disk / "compute.db") as node:
        execution = noop_execution(SleepSeconds=1, ErrorMessage="boom")
        await node.ask(execution, wait=False)
        await eventually(lambda: node.state(execution.id) is L.RUNNING)
        fill(small_disk)
        await asyncio.sleep(2)  # the run failed meanwhile; nothing could record it
        assert node.state(execution.id) is L.RUNNING
        (small_disk / FILLER).unlink()
        await eventually(lambda: node.state(execution.id) is L.FAILED, timeout=10)
        await eventually(
            lambda: any(
                isinstance(m, ComputeFailure) for m in node.callbacks.messages(execution.id)
            )
        )


async def test_a_run_the_nodes_full_disk_broke_may_be_tried_again(
    tmp_path: Path, small_disk: Path
) -> None:
    """A full disk of the node is not the job's fault and passes once space is freed: the
    failure says so (``NodeOutOfDisk``) and is retryable, so a daemon or service is run
    again after a backoff rather than shut out of the node for good."""
    from bacalhau.compute import ExecutionPipeline, ExecutionStore
    from bacalhau.executor import NoopExecutor
    from bacalhau.publisher import NoopPublisher
    from tests.compute.test_pipeline import OUTPUTS

    with ExecutionStore(tmp_path / "compute.db") as store:
        pipeline = ExecutionPipeline(
            node_id="compute-node",
            store=store,
            executors={"noop": NoopExecutor()},
            publishers={"noop": NoopPublisher()},
            results_root=small_disk / "executions",
        )
        execution = noop_execution(
            result_paths=OUTPUTS, ResultFiles={"outputs/big.bin": "x" * (9 * 2**20)}
        )
        store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        record = await pipeline.run(execution.id)
        assert record.state is L.FAILED
        [failure] = store.pending_callbacks("requester")
        assert isinstance(failure.message, ComputeFailure)
        details = failure.message.event.details
        assert details["ErrorCode"] == "NodeOutOfDisk", details
        assert details["Retryable"] == "true"
