"""A compute node that runs WASM jobs, served over real mutual TLS and joined to a static
cluster view, and the real compute endpoint under it: what the transport tests that need a
whole node share."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bacalhau.compute import (
    Bidder,
    CapacityTracker,
    ComputeEndpoint,
    ExecutionPipeline,
    ExecutionStore,
    OrchestratorCallbacks,
    RequesterTrust,
    default_strategies,
)
from bacalhau.executor import Executor
from bacalhau.executor.wasm import WasmExecutor
from bacalhau.models import Resources
from bacalhau.node._wiring import RequesterLinks
from bacalhau.publisher import Publisher
from bacalhau.transport import NodeServer
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.transport.cluster import Node

ROOMY = Resources(cpu=8, memory=16 * 2**30, disk=10**11)


def compute_endpoint(
    node_id: str,
    store: ExecutionStore,
    *,
    executors: Mapping[str, Executor],
    publishers: Mapping[str, Publisher],
    results_root: Path,
    callbacks: OrchestratorCallbacks,
    trusted: list[str],
    room: Resources = ROOMY,
    **options: Any,
) -> ComputeEndpoint:
    """A real compute endpoint (bidder, pipeline, capacity) over ``executors`` and
    ``publishers``, obeying the ``trusted`` requesters; ``options`` go to the endpoint."""
    return ComputeEndpoint(
        node_id=node_id,
        store=store,
        bidder=Bidder(
            node_id=node_id,
            strategies=default_strategies(
                executors=executors, publishers=publishers, max_job_requirements=room
            ),
        ),
        pipeline=ExecutionPipeline(
            node_id=node_id,
            store=store,
            executors=executors,
            publishers=publishers,
            results_root=results_root,
        ),
        callbacks=callbacks,
        capacity=CapacityTracker(room),
        trust=RequesterTrust(trusted),
        **options,
    )


async def serve_wasm_compute(
    stack: AsyncExitStack,
    tmp: Path,
    node: Node,
    *,
    requester_id: str,
    view: StaticNodeView,
    links: RequesterLinks,
    store: ExecutionStore,
    publishers: Mapping[str, Publisher],
    callbacks: OrchestratorCallbacks | None = None,
    advertise_publishers: bool = False,
) -> ComputeEndpoint:
    """Start the node's endpoint (WASM executor, ``publishers``) and its server on
    ``stack``, trusting ``requester_id`` and fetching modules through ``links`` (callbacks
    too unless ``callbacks`` is given), and make it a member of ``view``. The view's record
    lists ``publishers`` when ``advertise_publishers``, else the default record's."""
    executors = {"wasm": await stack.enter_async_context(WasmExecutor())}
    endpoint = compute_endpoint(
        node.node_id,
        store,
        executors=executors,
        publishers=publishers,
        results_root=tmp / "executions",
        callbacks=callbacks or links,
        trusted=[requester_id],
        callback_initial_backoff=0.01,
        callback_max_backoff=0.05,
        module_source=links,
    )
    await stack.enter_async_context(endpoint)
    server = NodeServer(node.identity, node.files)
    server.add_compute_handler(endpoint)
    await stack.enter_async_context(server)
    info = compute_node_info(node.node_id, engines=("wasm",))
    if advertise_publishers:
        assert info.compute is not None
        info = dataclasses.replace(
            info, compute=dataclasses.replace(info.compute, publishers=sorted(publishers))
        )
    await view.join(dataclasses.replace(info, grpc_address=server.address))
    return endpoint
