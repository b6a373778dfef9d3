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
