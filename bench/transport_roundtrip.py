"""Round-trip time of one bprotocol call over a warm mutual-TLS gRPC channel on loopback.

Prints JSON: median / p90 / p99 in milliseconds for

- ``raw_grpc_mtls``: a bare grpc.aio unary call with an empty payload over the same mTLS
  credentials (the floor: what gRPC and TLS cost by themselves);
- ``cancel_execution``: the smallest bprotocol message through ComputeClient and NodeServer
  (peer identity extraction, conversion, error translation included);
- ``ask_for_bid``: AskForBid carrying a full execution with its job;
- ``on_bid_complete``: a signed BidResult (ed25519 sign + verify on top).

    python bench/transport_roundtrip.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Event,
    Execution,
    ExecutionReport,
    Job,
    RunResult,
    SpecConfig,
    Task,
)
from bacalhau.transport import (
    ComputeClient,
    NodeServer,
    OrchestratorClient,
    channel_credentials,
    channel_options,
    server_credentials,
)


class _Compute:
    async def ask_for_bid(self, source_node_id: str, request: AskForBidRequest) -> None:
        return None

    async def bid_accepted(self, source_node_id: str, decision: BidDecision) -> None:
        return None

    async def bid_rejected(self, source_node_id: str, decision: BidDecision) -> None:
        return None

    async def cancel_execution(self, source_node_id: str, request: CancelExecutionRequest) -> None:
        return None


class _Orchestrator:
    async def on_bid_complete(self, result: BidResult) -> None:
        return None

    async def on_run_complete(self, result: RunResult) -> None:
        return None

    async def on_compute_failure(self, failure: ComputeFailure) -> None:
        return None

    async def report_executions(self, report: ExecutionReport) -> None:
        return None


def _node(ca: ClusterCA, root: Path, name: str) -> tuple[NodeIdentity, NodeFiles]:
    identity = NodeIdentity.load_or_create(root / name)
    return identity, ca.issue_node_certificate(identity)


def _execution(node_id: str) -> Execution:
    job = Job(
        id="j-0b3ad4b7-5b54-4b0e-8f2c-6d2d0f1e2a3b",
        name="bench",
        namespace="default",
        type="batch",
        count=1,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(
                    type="docker",
                    params={"Image": "local/busybox:1.37", "Entrypoint": ["echo", "hi"]},
                ),
                publisher=SpecConfig(type="local"),
            )
        ],
    )
    return Execution(
        id="e-7f1c1b9e-2d5e-4c3e-9a4b-0c1d2e3f4a5b", job_id=job.id, node_id=node_id, job=job
    )


async def _measure(call: Callable[[], Awaitable[Any]], calls: int) -> dict[str, float]:
    for _ in range(max(50, calls // 10)):  # warm: connection, handshake, code paths
        await call()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 4),
        "p90_ms": round(samples[int(len(samples) * 0.9)], 4),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 4),
    }


async def _raw_baseline(files: NodeFiles, peer_id: str, calls: int) -> dict[str, float]:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Echo", {"Echo": _unary(echo)})]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(files))
    await server.start()
    try:
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", channel_credentials(files), options=channel_options(peer_id)
        ) as channel:
            method = channel.unary_unary("/bench.Echo/Echo")
            return await _measure(lambda: method(b"", timeout=10), calls)
    finally:
        await server.stop(None)


def _unary(fn: Callable[[bytes, Any], Awaitable[bytes]]) -> Any:
    return grpc.unary_unary_rpc_method_handler(fn)


async def main(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = ClusterCA.create(root / "ca")
        req_id, req_files = _node(ca, root, "requester")
        comp_id, comp_files = _node(ca, root, "compute")

        results: dict[str, Any] = {"calls": calls}
        results["raw_grpc_mtls"] = await _raw_baseline(comp_files, comp_id.node_id, calls)

        comp_server = NodeServer(comp_id, comp_files)
        comp_server.add_compute_handler(_Compute())
        req_server = NodeServer(req_id, req_files)
        req_server.add_orchestrator_handler(_Orchestrator())
        async with (
            comp_server,
            req_server,
            ComputeClient(req_id, req_files) as to_compute,
            OrchestratorClient(
                comp_id, comp_files, req_server.address, req_id.node_id
            ) as to_requester,
        ):
            to_compute.register_node(comp_id.node_id, comp_server.address)
            cancel = CancelExecutionRequest("e-1", "bench")
            results["cancel_execution"] = await _measure(
                lambda: to_compute.cancel_execution(comp_id.node_id, cancel), calls
            )
            ask = AskForBidRequest(execution=_execution(comp_id.node_id))
            results["ask_for_bid"] = await _measure(
                lambda: to_compute.ask_for_bid(comp_id.node_id, ask), calls
            )
            bid = BidResult(
                execution_id="e-1",
                job_id="j-1",
                node_id=comp_id.node_id,
                accepted=True,
                event=Event(message="ok", topic="Exec Scanning"),
            )
            results["on_bid_complete"] = await _measure(
                lambda: to_requester.on_bid_complete(bid), calls
            )
        return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls)), indent=2))
