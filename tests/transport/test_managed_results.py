"""The s3managed publisher (Bacalhau v1.8): results go to the requester's own bucket, through
URLs the requester signs for the node that runs the execution, and nobody else.

Real components over real mutual-TLS gRPC on loopback, as in ``test_modules_by_reference``: a
requester (orchestrator, job store, NodeServer) holding a bucket on a real S3 server
(SeaweedFS), and a compute node (endpoint, store, WASM executor, the s3managed publisher)
asking it for upload URLs through the node's own wiring (``RequesterLinks`` over an
``OrchestratorClient``). A third member of the cluster plays a node asking for what is not
its own.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yarl

from bacalhau.compute import (
    ExecutionStore,
)
from bacalhau.errors import InvalidJobSpec, InvalidRequest, InvalidTransition, PermissionDenied
from bacalhau.models import (
    Execution,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeType,
    SpecConfig,
)
from bacalhau.node._wiring import RequesterLinks
from bacalhau.orchestrator import Orchestrator
from bacalhau.publisher import ManagedBucket, NoopPublisher, S3ManagedPublisher
from bacalhau.transport import ComputeClient, NodeServer, OrchestratorClient
from tests.compute.wasm_jobs import module_url, wasm_job
from tests.executor.conftest import wasm_modules as wasm_modules  # a fixture
from tests.orchestrator.node_view import StaticNodeView
from tests.publisher.seaweedfs import S3Server, seaweedfs
from tests.transport.cluster import Cluster
from tests.transport.wasm_compute import serve_wasm_compute


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> ManagedBucket:
    # The requester's credentials (boto3's chain): it signs; the compute node never uses them.
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return ManagedBucket(bucket=s3.new_bucket(), prefix="job-results/", endpoint=s3.endpoint)


@dataclass
class ManagedCluster:
    orchestrator: Orchestrator
    requester_server: NodeServer
    requester_id: str
    compute_id: str
    #: A client to the requester as a third member of the cluster (not the compute node).
    stranger: OrchestratorClient
    #: A client to the requester as the compute node.
    compute_link: OrchestratorClient

    async def run(self, job: Job) -> tuple[Job, list[Execution]]:
        job_id = (await self.orchestrator.submit_job(job)).job_id
        async with asyncio.timeout(30):
            while not (done := await self.orchestrator.get_job(job_id)).state.is_terminal():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return done, await self.orchestrator.list_executions(job_id)


@asynccontextmanager
async def managed_cluster(
    cluster: Cluster, tmp: Path, bucket: ManagedBucket | None
) -> AsyncIterator[ManagedCluster]:
    requester, compute, stranger = cluster.node(), cluster.node(), cluster.node()
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
            managed_bucket=bucket,
        )
        await stack.enter_async_context(orchestrator)
        requester_server = NodeServer(requester.identity, requester.files)
        requester_server.add_orchestrator_handler(orchestrator)
        await stack.enter_async_context(requester_server)

        def client(node: object) -> OrchestratorClient:
            return OrchestratorClient(
                node.identity,  # type: ignore[attr-defined]
                node.files,  # type: ignore[attr-defined]
                requester_server.address,
                requester.node_id,
            )

        compute_link = await stack.enter_async_context(client(compute))
        links = RequesterLinks()
        links.add_remote(requester.node_id, compute_link)
        store = stack.enter_context(ExecutionStore(tmp / "compute.db"))

        async def upload_url(job: Job, execution_id: str) -> str:
            # As node/ wires it: asked of the execution's requester.
            record = store.find(execution_id)
            assert record is not None
            return await links.presign_result_upload(record.requester_id, job.id, execution_id)

        publishers = {
            "s3managed": S3ManagedPublisher(upload_url=upload_url),
            "noop": NoopPublisher(),
        }
        await serve_wasm_compute(
            stack,
            tmp,
            compute,
            requester_id=requester.node_id,
            view=view,
            links=links,
            store=store,
            publishers=publishers,
            advertise_publishers=True,
        )
        yield ManagedCluster(
            orchestrator=orchestrator,
            requester_server=requester_server,
            requester_id=requester.node_id,
            compute_id=compute.node_id,
            stranger=await stack.enter_async_context(client(stranger)),
            compute_link=compute_link,
        )


def managed_job(greeting: str) -> Job:
    job = wasm_job(module_url(greeting))
    job.task.publisher = SpecConfig(type="s3managed")
    return job


async def _download(url: str) -> dict[str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(yarl.URL(url, encoded=True)) as response,
    ):
        assert response.status == 200, await response.text()
        data = await response.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {
            m.name.lstrip("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


async def test_results_go_to_the_requesters_bucket_and_download_with_its_signature(
    cluster: Cluster, tmp_path: Path, bucket: ManagedBucket, s3: S3Server
) -> None:
    async with managed_cluster(cluster, tmp_path, bucket) as c:
        job, [ex] = await c.run(managed_job("managed hello"))
        assert job.state is JobStateType.COMPLETED, job.state_message
        assert ex.compute_state is ExecutionStateType.COMPLETED
        result = ex.published_result
        assert result is not None and result.type == "s3managed"
        assert result.params["JobID"] == job.id and result.params["ExecutionID"] == ex.id
        # In the bucket under the configured prefix, as Bacalhau lays it out.
        key = f"job-results/{job.id}/{ex.id}.tar.gz"
        assert bucket.key(job.id, ex.id) == key
        s3.client().head_object(Bucket=bucket.bucket, Key=key)
        # What /results answers: a download URL anyone holding it can use.
        answered = bucket.rewrite(result)
        assert answered.type == "s3PreSigned" and answered.params["Managed"] is True
        files = await _download(answered.params["PreSignedURL"])
        assert files["stdout"] == b"managed hello\n"
        assert files["exitCode"].strip() == b"0"

        # Nobody but the node the execution ran on gets an upload URL for it...
        with pytest.raises(PermissionDenied):
            await c.stranger.presign_result_upload(job.id, ex.id)
        with pytest.raises(PermissionDenied):
            await c.compute_link.presign_result_upload(
                job.id, "e-00000000-0000-0000-0000-000000000000"
            )
        # ... and that node no longer, once the execution has ended.
        with pytest.raises(InvalidTransition):
            await c.compute_link.presign_result_upload(job.id, ex.id)


async def test_a_requester_without_a_bucket_refuses_s3managed_jobs_at_submit(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with managed_cluster(cluster, tmp_path, None) as c:
        with pytest.raises(InvalidJobSpec) as err:
            await c.orchestrator.submit_job(managed_job("nowhere"))
        assert err.value.field == "Tasks[0].Publisher.Type"
        assert "Publishers.Types.S3Managed.Bucket" in err.value.hint


async def test_an_upload_url_is_only_for_a_job_publishing_with_s3managed(
    cluster: Cluster, tmp_path: Path, bucket: ManagedBucket, wasm_modules: Path
) -> None:
    async with managed_cluster(cluster, tmp_path, bucket) as c:
        # A job publishing elsewhere, kept running on the compute node.
        url = (
            "data:application/wasm;base64,"
            + base64.b64encode((wasm_modules / "sleeper.wasm").read_bytes()).decode()
        )
        job = wasm_job(url)
        job.task.engine.params["Parameters"] = ["30"]
        job.task.publisher = SpecConfig(type="noop")
        job_id = (await c.orchestrator.submit_job(job)).job_id

        async def accepted() -> bool:
            executions = await c.orchestrator.list_executions(job_id)
            return any(e.compute_state is ExecutionStateType.BID_ACCEPTED for e in executions)

        async with asyncio.timeout(20):
            while not await accepted():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        [ex] = await c.orchestrator.list_executions(job_id)
        with pytest.raises(InvalidRequest, match="publishes with noop, not s3managed"):
            await c.compute_link.presign_result_upload(job_id, ex.id)
        # Its own node asking about the right job: the checks above are what refused it.
        assert ex.node_id == c.compute_id
        await c.orchestrator.stop_job(job_id, reason="done")
