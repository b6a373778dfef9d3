"""A requester of a release before batched callbacks serves no DeliverCallbacks: the compute
node's client then delivers each callback by the call made for its kind, so a rolling upgrade
loses no result. A real mTLS gRPC server whose OrchestratorService lacks the batch call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from bacalhau._proto.v1 import orchestrator_pb2_grpc
from bacalhau.errors import ExecutionNotFound, NotFound, Unavailable
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    Event,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.transport import OrchestratorClient, server_credentials
from bacalhau.transport._services import OrchestratorServicer
from bacalhau.transport._tls import server_options
from tests.transport.cluster import Cluster, Node, RecordingOrchestrator


class _BeforeBatches(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Serves no DeliverCallbacks, as a requester's server did before the call existed:
    gRPC itself answers UNIMPLEMENTED ("method not found")."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method.endswith("/DeliverCallbacks"):
            return None
        return await continuation(details)


@asynccontextmanager
async def _older_requester(node: Node, handler: Any) -> AsyncIterator[str]:
    server = grpc.aio.server(options=server_options(), interceptors=[_BeforeBatches()])
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
        OrchestratorServicer(handler), server
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(node.files))
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_each_callback_goes_by_its_own_call(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    handler = RecordingOrchestrator()
    bid = BidResult("e-1", "j-1", compute.node_id, accepted=True)
    done = RunResult(
        "e-1", "j-1", compute.node_id, SpecConfig(type="noop"), RunCommandResult(stdout="hi")
    )
    failed = ComputeFailure("e-2", "j-1", compute.node_id, Event(message="disk full"))
    async with (
        _older_requester(requester, handler) as address,
        OrchestratorClient(compute.identity, compute.files, address, requester.node_id) as c,
    ):
        # One at a time: the first of what is queued, then the next.
        assert await c.deliver_callbacks([bid, done, failed]) == [None]
        assert await c.deliver_callbacks([done, failed]) == [None]
        assert await c.deliver_callbacks([failed]) == [None]
        # A refusal is that callback's outcome; an error that may pass fails the call.
        handler.fail_with = ExecutionNotFound("no such execution")
        [refused] = await c.deliver_callbacks([bid])
        assert isinstance(refused, NotFound)  # rebuilt from its code: the family
        handler.fail_with = Unavailable("restarting")
        try:
            await c.deliver_callbacks([bid])
        except Unavailable:
            pass
        else:
            raise AssertionError("a retryable refusal must fail the call")
    assert handler.calls == [
        ("on_bid_complete", bid),
        ("on_run_complete", done),
        ("on_compute_failure", failed),
    ]
