"""A job store that cannot write for now (its disk full: a small tmpfs, really filled) answers
a retryable Unavailable naming the store, never a bug: a client's submit may be retried, and
a compute node's callbacks are kept and sent again rather than dropped (which ran finished
jobs a second time). Nothing half-written stays, and all works again once space is freed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bacalhau.errors import Unavailable
from bacalhau.models import (
    BidResult,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from tests.orchestrator.test_callbacks import (
    Setup,
    _job,
    _running_on,
    requester_with_node_a,
)
from tests.small_disk import FILLER, fill, needs_root, small_tmpfs

pytestmark = needs_root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "8m") as disk:
        yield disk


@pytest.fixture
async def on_small_disk(small_disk: Path) -> AsyncIterator[Setup]:
    async with requester_with_node_a(small_disk / "requester") as ready:
        yield ready


async def test_a_submit_to_a_full_store_is_unavailable_naming_it_and_may_be_retried(
    on_small_disk: Setup, small_disk: Path
) -> None:
    orch = on_small_disk.orch
    before = len((await orch.list_jobs()).items)
    fill(small_disk)
    with pytest.raises(Unavailable) as refused:
        for _ in range(50):  # until a write needs room the file system no longer has
            await orch.submit_job(_job())
            before += 1
    assert refused.value.retryable
    assert "the job store cannot write for now" in str(refused.value)
    assert "jobs.db" in str(refused.value) and "free space" in (refused.value.hint or "")
    assert len((await orch.list_jobs()).items) == before  # nothing half-written
    (small_disk / FILLER).unlink()
    assert (await orch.submit_job(_job())).job_id


async def test_callbacks_a_full_store_cannot_record_fail_retryably(
    on_small_disk: Setup, small_disk: Path
) -> None:
    orch, compute = on_small_disk.orch, on_small_disk.compute
    job_id, ex = await _running_on(orch, compute, "node-a")
    result = RunResult(
        ex.id, job_id, "node-a", SpecConfig(type="noop"), RunCommandResult(stdout="done")
    )
    fill(small_disk)
    with pytest.raises(Unavailable) as refused:
        await orch.on_callbacks([BidResult(ex.id, job_id, "node-a", accepted=True), result])
    assert refused.value.retryable  # the node's outbox keeps them and sends them again
    (small_disk / FILLER).unlink()
    assert await orch.on_callbacks([result]) == [None]
    assert orch.store.get_execution(ex.id).compute_state.label == "Completed"
