"""Inline WASM modules travel from requester to compute node by content hash.

Real components over real mutual-TLS gRPC on loopback: a requester (the orchestrator with its
SQLite job store, served by a NodeServer) and a compute node (its endpoint, execution store
and the WASM executor, served by another NodeServer), the compute node reaching the requester
through the node's own wiring (``RequesterLinks`` over an ``OrchestratorClient``). Only the
cluster view is set by hand. The requester's server counts the modules it hands out.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from bacalhau.compute import (
    ComputeEndpoint,
    ExecutionStore,
)
from bacalhau.models import (
    AskForBidRequest,
    ComputeFailure,
    Execution,
    ExecutionStateType,
    Job,
    JobStateType,
    LocalExecutionState,
    NodeInfo,
    NodeType,
    entry_module_url,
    module_digest,
    module_reference,
    new_execution_id,
)
from bacalhau.node._wiring import RequesterLinks
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from bacalhau.publisher import NoopPublisher
from bacalhau.transport import ComputeClient, NodeServer, OrchestratorClient
from bacalhau.transport._convert_messages import ask_for_bid_from_proto, ask_for_bid_to_proto
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.wasm_jobs import module_url, wasm_job
from tests.orchestrator.node_view import StaticNodeView
from tests.transport.cluster import Cluster
from tests.transport.wasm_compute import serve_wasm_compute

L = LocalExecutionState


@dataclass
class WasmCluster:
    orchestrator: Orchestrator
    requester_server: NodeServer
    requester_id: str
    compute_id: str
    endpoint: ComputeEndpoint
    #: The requester's client to the compute node (signs as the requester).
    compute_client: ComputeClient
    requester_db: Path
    compute_db: Path

    async def run(self, job: Job) -> tuple[Job, list[Execution]]:
        job_id = (await self.orchestrator.submit_job(job)).job_id
        async with asyncio.timeout(20):
            # Polls the job store, as the fast-path tests do.
            while not (done := await self.orchestrator.get_job(job_id)).state.is_terminal():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return done, await self.orchestrator.list_executions(job_id)


@asynccontextmanager
async def wasm_cluster(
    cluster: Cluster,
    tmp: Path,
    *,
    settings: SchedulerSettings | None = None,
    callbacks: RecordingCallbacks | None = None,
) -> AsyncIterator[WasmCluster]:
    """The two nodes; with ``callbacks`` the compute node's callbacks go there instead of
    to the requester (modules are still fetched from it)."""
    requester, compute = cluster.node(), cluster.node()
    async with AsyncExitStack() as stack:
        compute_client = await stack.enter_async_context(
            ComputeClient(requester.identity, requester.files)
        )
        view = StaticNodeView()
        orchestrator = Orchestrator(
            node_info=NodeInfo(node_id=requester.node_id, node_type=NodeType.REQUESTER),
            data_dir=tmp / "orchestrator",
            compute=compute_client,
            node_view=view,
            settings=settings or SchedulerSettings(),
        )
        await stack.enter_async_context(orchestrator)
        requester_server = NodeServer(requester.identity, requester.files)
        requester_server.add_orchestrator_handler(orchestrator)
        await stack.enter_async_context(requester_server)

        links = RequesterLinks()
        links.add_remote(
            requester.node_id,
            await stack.enter_async_context(
                OrchestratorClient(
                    compute.identity,
                    compute.files,
                    requester_server.address,
                    requester.node_id,
                )
            ),
        )
        store = stack.enter_context(ExecutionStore(tmp / "compute.db"))
        endpoint = await serve_wasm_compute(
            stack,
            tmp,
            compute,
            requester_id=requester.node_id,
            view=view,
            links=links,
            store=store,
            publishers={"noop": NoopPublisher()},
            callbacks=callbacks,
        )
        yield WasmCluster(
            orchestrator=orchestrator,
            requester_server=requester_server,
            requester_id=requester.node_id,
            compute_id=compute.node_id,
            endpoint=endpoint,
            compute_client=compute_client,
            requester_db=tmp / "orchestrator" / "jobs.db",
            compute_db=tmp / "compute.db",
        )


def _modules_served() -> float:
    sample = REGISTRY.get_sample_value("bacalhau_modules_served_total", {"outcome": "served"})
    return sample or 0.0


def _sql(db: Path, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(statement, args))


def test_an_ask_carries_a_large_inline_module_by_reference_only() -> None:
    url = module_url("on the wire")
    execution = Execution(id="e-1", job_id="j-1", node_id="n-1", job=wasm_job(url))
    ids = {"requester_node_id": "r", "compute_node_id": "n-1"}

    msg = ask_for_bid_to_proto(AskForBidRequest(execution), **ids)

    reference = module_reference(module_digest(url))
    assert entry_module_url(ask_for_bid_from_proto(msg).execution.job or Job()) == reference
    assert len(msg.SerializeToString()) < 1024 < len(url)
    assert entry_module_url(execution.job or Job()) == url  # the record sent is left alone
    # A small module costs less to send than to fetch: it travels as it is.
    small = "data:application/wasm;base64," + base64.b64encode(b"\0asm\1\0\0\0").decode()
    small_ask = dataclasses.replace(execution, job=wasm_job(small))
    msg = ask_for_bid_to_proto(AskForBidRequest(small_ask), **ids)
    assert entry_module_url(ask_for_bid_from_proto(msg).execution.job or Job()) == small


async def test_a_compute_node_fetches_a_module_once_for_many_jobs(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = module_url("hello by reference")
    served_before = _modules_served()
    async with wasm_cluster(cluster, tmp_path) as c:
        first, [ex] = await c.run(wasm_job(url))
        assert first.state is JobStateType.COMPLETED, first.state_message
        assert ex.run_output is not None and ex.run_output.stdout == "hello by reference\n"
        # More jobs with the same module, several at once: none fetches it again.
        finished = await asyncio.gather(*(c.run(wasm_job(url)) for _ in range(4)))
        for job, executions in finished:
            assert job.state is JobStateType.COMPLETED, job.state_message
            assert [e.compute_state for e in executions] == [ExecutionStateType.COMPLETED]

        assert c.requester_server.module_requests == {"served": 1}
        assert _modules_served() == served_before + 1  # the requester's /metrics says so too
        assert c.endpoint.modules.fetches == 1
        # The compute node reads each execution's job whole, but stores the module once.
        assert entry_module_url(c.endpoint.store.get(ex.id).job) == url
        assert _sql(c.compute_db, "SELECT count(*) FROM modules") == [(1,)]
        [(largest,)] = _sql(c.compute_db, "SELECT max(length(execution)) FROM executions")
        assert largest < len(url)


async def test_a_module_that_does_not_match_its_hash_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = module_url("genuine")
    digest = module_digest(url)
    callbacks = RecordingCallbacks()
    async with wasm_cluster(cluster, tmp_path, callbacks=callbacks) as c:
        # The requester's copy is damaged (or the requester lies): another module under the
        # genuine one's hash.
        _sql(
            c.requester_db,
            "INSERT INTO blobs (hash, data) VALUES (?, ?)",
            digest,
            module_url("impostor"),
        )
        execution = _ask(c, url)
        await c.compute_client.ask_for_bid(c.compute_id, AskForBidRequest(execution, False))

        [failure] = await callbacks.wait_for(execution.id, ComputeFailure)
        assert isinstance(failure, ComputeFailure)
        assert f"module requester {c.requester_id} sent for {digest}" in failure.event.message
        assert "does not match that hash: refused" in failure.event.message
        assert failure.event.details["ErrorCode"] == "InvalidContent"
        assert c.requester_server.module_requests == {"served": 1}
        assert c.endpoint.store.get(execution.id).state is L.FAILED
        assert c.endpoint.store.module(digest) is None  # nothing of it kept, nothing ran
        assert not (tmp_path / "executions" / execution.id).exists()


def _ask(c: WasmCluster, url: str) -> Execution:
    """An execution of a job the requester never stored, assigned to the compute node."""
    return Execution(
        id=new_execution_id(), job_id="j-unstored", node_id=c.compute_id, job=wasm_job(url)
    )


async def test_a_module_the_requester_does_not_hold_fails_the_execution(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = module_url("never stored")
    callbacks = RecordingCallbacks()
    async with wasm_cluster(cluster, tmp_path, callbacks=callbacks) as c:
        # An ask from the requester for a job it never stored (so it holds no such module).
        execution = _ask(c, url)
        await c.compute_client.ask_for_bid(c.compute_id, AskForBidRequest(execution, False))

        [failure] = await callbacks.wait_for(execution.id, ComputeFailure)
        assert isinstance(failure, ComputeFailure)
        assert f"does not hold the WASM module {module_digest(url)}" in failure.event.message
        assert failure.event.details["ErrorCode"] == "NotFound"
        assert failure.event.details["Retryable"] == "false"
        assert c.endpoint.store.get(execution.id).state is L.FAILED
        assert c.requester_server.module_requests == {"not_found": 1}
