"""``/metrics`` on the API port: the Prometheus series the requester exposes, and that
they move with the work done."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bacalhau.api import ApiServer
from bacalhau.api._metrics import LAG_PROBE_INTERVAL, LAG_WARNING_SECONDS
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.test_hardening import noop_job
from tests.orchestrator.node_view import StaticNodeView

SERIES = (
    "bacalhau_jobs_submitted_total",
    "bacalhau_jobs_finished_total",
    "bacalhau_evaluation_queue_depth",
    "bacalhau_scheduling_seconds",
    "bacalhau_dispatch_seconds",
    "bacalhau_grpc_call_seconds",
    "bacalhau_sqlite_transaction_seconds",
    "bacalhau_event_loop_lag_seconds",
    "bacalhau_jobs_active",
    "process_resident_memory_bytes",
)


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A requester's API (no compute nodes), and a session on it."""
    async with (
        Orchestrator(
            node_info=NodeInfo(node_id="n-metrics", node_type=NodeType.REQUESTER),
            data_dir=tmp_path / "req",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        yield http


async def test_metrics_name_the_series_and_count_jobs(tmp_path: Path) -> None:
    async with _serving(tmp_path) as http:
        async with http.get("/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            before = await r.text()
        for name in SERIES:
            assert f"# TYPE {name} " in before, name
        async with http.put("/api/v1/orchestrator/jobs", json={"Job": noop_job()}) as r:
            assert r.status == 200, await r.text()
        async with http.get("/metrics") as r:
            after = await r.text()
    submitted = "bacalhau_jobs_submitted_total"
    assert _value(after, submitted) == _value(before, submitted) + 1
    commits = "bacalhau_sqlite_transaction_seconds_count"
    assert _value(after, commits) > _value(before, commits)


async def test_jobs_waiting_for_a_node_show_as_queued(tmp_path: Path) -> None:
    queued = 'bacalhau_jobs_active{state="Queued"}'
    async with _serving(tmp_path) as http:
        async with http.get("/metrics") as r:
            before = _value(await r.text(), queued)
        # No compute node: a job with a queue timeout waits in Queued for one.
        job = noop_job()
        job["Tasks"][0]["Timeouts"] = {"QueueTimeout": 60}
        async with http.put("/api/v1/orchestrator/jobs", json={"Job": job}) as r:
            job_id = (await r.json())["JobID"]
        for _ in range(100):
            async with http.get(f"/api/v1/orchestrator/jobs/{job_id}") as r:
                if (await r.json())["Job"]["State"]["StateType"] == "Queued":
                    break
            await asyncio.sleep(0.05)
        async with http.get("/metrics") as r:
            text = await r.text()
    assert _value(text, queued) == before + 1
    assert 'bacalhau_jobs_active{state="Running"}' in text


async def test_a_blocked_event_loop_is_measured_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _serving(tmp_path) as http:
        async with http.get("/metrics") as r:
            before = _value(await r.text(), "bacalhau_event_loop_lag_seconds_sum")
        await asyncio.sleep(0.3)  # the probe is asleep now
        with caplog.at_level(logging.WARNING, logger="bacalhau.api._metrics"):
            # The probe may have slept up to one interval before the block, so its lag is
            # between the block less one interval and the block: above the warning either way.
            time.sleep(LAG_WARNING_SECONDS + LAG_PROBE_INTERVAL + 0.2)  # noqa: ASYNC251
            await asyncio.sleep(0.3)
        async with http.get("/metrics") as r:
            after = _value(await r.text(), "bacalhau_event_loop_lag_seconds_sum")
    assert after - before >= 0.7
    [warning] = [r.getMessage() for r in caplog.records if "blocked for" in r.getMessage()]
    assert "event loop was blocked for" in warning
