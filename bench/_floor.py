"""The floor under a trivial WASM job's latency on this machine, measured in the same run.

What no implementation of the job's path can avoid: one HTTP round trip (the client's
submit, answered with the result), one mutual-TLS gRPC round trip (the requester's ask to a
compute node, answered with the result) and the run of the cached module itself. Each is
measured bare, with nothing of ours in it, and ``wasm_floor_ms`` is their sum: the latency
figure's raw baseline, as ``docker run`` is the Docker figure's.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path

import aiohttp
import wasmtime
from aiohttp import web
from job_latency import WASM, raw_wasm
from transport_roundtrip import _measure, _node, _raw_baseline

from bacalhau.identity import ClusterCA

#: A body the size of a small job's submission and answer.
_BODY = b'{"Job": {"Name": "floor", "Type": "batch", "Tasks": [{"Name": "main"}]}}' * 8


async def _http_round_trip_ms(calls: int) -> float:
    """A PUT of a small JSON body to a bare aiohttp handler that answers one, keep-alive."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/json")

    app = web.Application()
    app.router.add_put("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:

            async def put() -> None:
                async with session.put(f"http://127.0.0.1:{port}/echo", data=_BODY) as resp:
                    await resp.read()

            return (await _measure(put, calls))["median_ms"]
    finally:
        await runner.cleanup()


async def _grpc_round_trip_ms(calls: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = ClusterCA.create(root / "ca")
        identity, files = _node(ca, root, "compute")
        return (await _raw_baseline(files, identity.node_id, calls))["median_ms"]


def _wasm_run_ms(calls: int) -> float:
    engine = wasmtime.Engine()
    module_bytes = WASM.read_bytes()
    cached = wasmtime.Module(engine, module_bytes)
    samples = [raw_wasm(module_bytes, engine, cached) * 1000 for _ in range(calls)]
    return statistics.median(samples)


async def wasm_floor(calls: int = 300) -> dict[str, float]:
    """The floor's parts (median milliseconds) and their sum."""
    parts = {
        "http_round_trip_ms": await _http_round_trip_ms(calls),
        "grpc_mtls_round_trip_ms": await _grpc_round_trip_ms(calls),
        "wasm_run_ms": await asyncio.to_thread(_wasm_run_ms, max(20, calls // 10)),
    }
    out = {k: round(v, 3) for k, v in parts.items()}
    out["wasm_floor_ms"] = round(sum(parts.values()), 2)
    return out
