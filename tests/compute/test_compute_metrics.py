"""A compute node's Prometheus metrics move with the work it does, and ``/metrics`` is served
alone on a port of its own (a compute-only node serves no API)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bacalhau._metrics import Role
from bacalhau.api import MetricsServer
from bacalhau.api._history import wait_for_end
from tests.orchestrator.test_fast_path import _job, requester_with_one_node


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_job_moves_the_compute_metrics(tmp_path: Path) -> None:
    names = (
        ("bacalhau_compute_executions_finished_total", {"state": "Completed"}),
        ("bacalhau_compute_ask_seconds_count", {}),
        ("bacalhau_compute_sqlite_transaction_seconds_count", {}),
    )
    async with AsyncExitStack() as stack:
        orchestrator, _ = await requester_with_one_node(stack, tmp_path)
        before = [_value(name, **labels) for name, labels in names]
        submitted = await orchestrator.submit_job(_job())
        job = await wait_for_end(
            orchestrator, submitted.job_id, "batch", wait=30, closing=asyncio.Event()
        )
        assert job is not None and job.state.wire == "Completed"
        after = [_value(name, **labels) for name, labels in names]
        # Read while the node is up: the gauge reads its queue (empty once the job ran).
        assert REGISTRY.get_sample_value("bacalhau_compute_queue_depth") == 0
    finished, asks, transactions = (a - b for a, b in zip(after, before, strict=True))
    assert (finished, asks) == (1, 1)
    assert transactions >= 1


async def test_the_metrics_server_serves_metrics_and_nothing_else() -> None:
    async with MetricsServer(host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as http:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}"
        async with http.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            families = {f.name for f in text_string_to_metric_families(await resp.text())}
        assert {
            "bacalhau_compute_executions_finished",
            "bacalhau_compute_queue_depth",
            "bacalhau_compute_sqlite_transaction_seconds",
            "bacalhau_wasm_runs",
            "bacalhau_event_loop_lag_seconds",
            "process_cpu_seconds",
        } <= families
        for path in ("/", "/api/v1/orchestrator/jobs", "/metrics/x"):
            async with http.get(f"{url}{path}") as resp:
                assert resp.status == 404, path
        async with http.post(f"{url}/metrics") as resp:
            assert resp.status == 405


REQUESTER_SERIES = {
    "bacalhau_jobs_submitted",
    "bacalhau_evaluation_queue_depth",
    "bacalhau_asks_per_call",
}
COMPUTE_SERIES = {
    "bacalhau_compute_queue_depth",
    "bacalhau_compute_ask_seconds",
    "bacalhau_wasm_runs",
}
SHARED_SERIES = {"bacalhau_event_loop_lag_seconds", "process_cpu_seconds"}


async def _families(roles: list[Role]) -> set[str]:
    async with (
        MetricsServer(host="127.0.0.1", port=0, roles=roles) as server,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/metrics") as resp,
    ):
        return {f.name for f in text_string_to_metric_families(await resp.text())}


async def test_a_node_serves_the_series_of_its_own_roles_only() -> None:
    # One process holds every role's metrics (a test process, or a node that imported
    # them all): a compute-only node must not show the requester's as constant zeros.
    import bacalhau.orchestrator._metrics
    import bacalhau.transport._ask_batches  # noqa: F401

    compute = await _families(["compute"])
    assert compute >= COMPUTE_SERIES | SHARED_SERIES
    assert not REQUESTER_SERIES & compute
    requester = await _families(["requester"])
    assert requester >= REQUESTER_SERIES | SHARED_SERIES
    assert not COMPUTE_SERIES & requester
    hybrid = await _families(["requester", "compute"])
    assert hybrid >= REQUESTER_SERIES | COMPUTE_SERIES | SHARED_SERIES


def _lag_probes() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name() == "event-loop-lag")


async def test_one_lag_probe_however_many_ports_serve_the_metrics() -> None:
    # A requester serving /metrics on its API port and on --metrics-port must not observe
    # every sleep of the loop twice.
    async with MetricsServer(host="127.0.0.1", port=0):
        async with MetricsServer(host="127.0.0.1", port=0):
            assert _lag_probes() == 1
        assert _lag_probes() == 1  # still used by the first
    await asyncio.sleep(0)
    assert _lag_probes() == 0
