"""The orchestrator's reads for its edges (REST, gRPC API, compute nodes): jobs, their
executions, history, logs and results, nodes, and modules sent by reference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bacalhau.errors import (
    InvalidRequest,
    InvalidTransition,
    JobNotFound,
    NotFound,
    PermissionDenied,
)
from bacalhau.models import (
    MANAGED_PUBLISHER,
    Execution,
    ExecutionStateType,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    LabelSelectorRequirement,
    LogChunk,
    LogPosition,
    NodeInfo,
    NodeState,
    SpecConfig,
    selector_matches,
)
from bacalhau.orchestrator._api import ALL_VERSIONS, JobPage, JobVersions
from bacalhau.orchestrator._callbacks import ExecutionCallbacks
from bacalhau.orchestrator._logs import ExecutionLogs
from bacalhau.orchestrator._managed import ManagedResultBucket
from bacalhau.orchestrator._metrics import MODULES_SERVED
from bacalhau.orchestrator._nodes import NodeDirectory
from bacalhau.orchestrator._reputation import node_reputations, with_reputation
from bacalhau.orchestrator._store import JobStore

E = ExecutionStateType

_JOB_ORDER_COLUMNS = {
    "": "create_time",
    "created_at": "create_time",
    "create_time": "create_time",
    "modified_at": "modify_time",
    "modify_time": "modify_time",
    "id": "id",
}
#: Stored job documents up to this many bytes per page are decoded on the event loop.
_DECODE_INLINE_BYTES = 256 * 1024


class OrchestratorQueries:
    """Answers the edges' reads from the job store and the node directory."""

    store: JobStore
    nodes: NodeDirectory
    _info: NodeInfo
    _callbacks: ExecutionCallbacks
    _logs: ExecutionLogs
    _managed_bucket: ManagedResultBucket | None

    def node_info(self) -> NodeInfo:
        return self._info

    async def get_job(self, job_id: str, *, namespace: str = "", version: int = 0) -> Job:
        job = self.store.get_job(self.store.resolve_job_id(job_id, namespace))
        if not version or version == job.version:
            return job
        return self._earlier_version(job, version)

    def _earlier_version(self, job: Job, version: int) -> Job:
        """Version ``version`` of ``job``: its spec as stored, in the state its history last
        gave it (a version that never ran stays Pending)."""
        found = self.store.job_versions(job.id, version=version)
        if not found:
            raise _no_version(job, version)
        return self._in_their_states(job, found)[0]

    def _in_their_states(self, job: Job, versions: list[Job]) -> list[Job]:
        """``versions`` (as stored) of ``job``, each in the state it has now: the latest in
        the job's, an earlier one in the state its history last gave it (a version that
        never ran stays Pending)."""
        last: dict[int, JobHistory] = {}
        for h in self.store.history_of(job.id):
            if h.type == HistoryType.JOB and h.job_state_new:
                last[h.job_version] = h
        for old in versions:
            if old.version == job.version:
                old.state, old.revision = job.state, job.revision
                old.modify_time, old.state_message = job.modify_time, job.state_message
                continue
            seen = last.get(old.version)
            if seen is not None:
                old.state = seen.job_state_new or old.state
                old.revision = seen.new_revision
                old.modify_time = seen.time
                # As the job's own message: the reason of a failure or a stop, none for a
                # completion (Bacalhau's MarkJobCompleted sets no message).
                ended = old.state.is_terminal() and old.state != JobStateType.COMPLETED
                old.state_message = seen.event.message if ended else ""
        return versions

    async def list_jobs(
        self,
        *,
        namespace: str = "",
        selector: list[LabelSelectorRequirement] | None = None,
        order_by: str = "created_at",
        reverse: bool = False,
        limit: int = 0,
        offset: int = 0,
        after: tuple[int | str, str] | None = None,
    ) -> JobPage:
        column = _JOB_ORDER_COLUMNS.get(order_by)
        if column is None:
            raise InvalidRequest(
                f"invalid order_by {order_by!r}",
                hint="use created_at, modified_at or id",
                details={"Field": "order_by"},
            )
        reqs = selector or []
        page = self.store.page_jobs(
            namespace=namespace,
            labels_match=(lambda labels: selector_matches(reqs, labels)) if reqs else None,
            order_by=column,
            reverse=reverse,
            limit=limit,
            offset=offset,
            after=after,
        )
        # Large specs take a while to read and decode: keep the event loop serving meanwhile.
        if page.size > _DECODE_INLINE_BYTES:
            jobs = await asyncio.to_thread(self.store.read_jobs, page.ids, own_connection=True)
        else:
            jobs = self.store.read_jobs(page.ids)
        return JobPage(items=jobs, has_more=page.has_more)

    async def list_executions(
        self, job_id: str, *, namespace: str = "", versions: JobVersions = ALL_VERSIONS
    ) -> list[Execution]:
        job = await self.get_job(job_id, namespace=namespace)
        if versions.version > job.version:
            raise _no_version(job, versions.version)
        executions = self.store.executions_of(job.id)
        if versions is not ALL_VERSIONS:
            executions = [e for e in executions if versions.keeps(e.job_version, job.version)]
        for ex in executions:
            ex.job = job
        return executions

    async def stream_logs(
        self,
        job_id: str,
        *,
        execution_id: str = "",
        follow: bool = False,
        tail: int = 0,
        namespace: str = "",
        version: int = 0,
        client: str = "",
        resume: LogPosition | None = None,
    ) -> AsyncIterator[LogChunk]:
        """A job's output (see :meth:`ExecutionLogs.open`); ``client`` names who asks (a
        user, else an address) for ``log_streams_per_client_max``."""
        full_id = self.store.resolve_job_id(job_id, namespace)
        if version and resume is None:
            await self.get_job(full_id, version=version)  # NotFound for a version never made
        return await self._logs.open(
            full_id,
            execution_id=execution_id,
            follow=follow,
            tail=tail,
            version=version,
            client=client,
            resume=resume,
        )

    async def job_history(
        self,
        job_id: str,
        *,
        since_ns: int = 0,
        event_type: str = "all",
        execution_id: str = "",
        node_id: str = "",
        namespace: str = "",
        versions: JobVersions = ALL_VERSIONS,
    ) -> list[JobHistory]:
        full_id = self.store.resolve_job_id(job_id, namespace)
        items = self.store.history_of(full_id)
        if versions is not ALL_VERSIONS:
            job = self.store.get_job(full_id)
            if versions.version > job.version:
                raise _no_version(job, versions.version)
            items = [h for h in items if versions.keeps(h.job_version, job.version)]
        event_type = (event_type or "all").lower()
        if event_type not in ("all", "job", "execution"):
            raise InvalidRequest(
                f"invalid event_type {event_type!r}",
                hint="use all, job or execution",
                details={"Field": "event_type"},
            )
        if not (since_ns or execution_id or node_id) and event_type == "all":
            # Unfiltered (a long-poll asks this at every change of the job it follows):
            # ``history_of`` already returns a list of the caller's own.
            return items
        out = []
        for h in items:
            if since_ns and h.time // 1_000_000_000 < since_ns // 1_000_000_000:
                continue
            if event_type == "job" and h.type != "JobLevel":
                continue
            if event_type == "execution" and h.type != "ExecutionLevel":
                continue
            if execution_id and not h.execution_id.startswith(execution_id):
                continue
            if node_id and not h.node_id.startswith(node_id):
                continue
            out.append(h)
        return out

    async def wait_for_change(self, job_id: str, *, after_seq: int, timeout: float) -> None:
        full_id = self.store.resolve_job_id(job_id)
        await self.store.wait_for_history(full_id, after_seq=after_seq, timeout=timeout)

    async def job_results(self, job_id: str, *, namespace: str = "") -> list[SpecConfig]:
        job = await self.get_job(job_id, namespace=namespace)
        if job.type not in ("batch", "ops"):
            raise InvalidRequest(f"job type {job.type} does not support results")
        # The latest version's, as Bacalhau (v1.8) serves them: an earlier version's results
        # are not what the job now produces.
        results = [
            ex.published_result
            for ex in self.store.executions_of(job.id)
            if ex.job_version == job.version
            and ex.compute_state == E.COMPLETED
            and ex.published_result is not None
            and ex.published_result.type
        ]
        if job.verified:
            # Nothing before the verdict; then the replicas still Completed are the
            # accepted ones: the same results, given once.
            return results[:1] if job.state == JobStateType.COMPLETED else []
        return results

    async def list_nodes(self) -> list[NodeState]:
        return with_reputation(self.nodes.all_nodes(known=True), node_reputations(self.store))

    async def get_node(self, node_id: str) -> NodeState:
        [node] = with_reputation(
            [self.nodes.get(node_id, known=True)], node_reputations(self.store)
        )
        return node

    def recent_bid_decisions(self) -> list[dict[str, object]]:
        """The approval hooks' latest decisions on bids, newest first (``node describe``)."""
        return self._callbacks.recent_decisions()

    async def get_module(self, sha256: str) -> str:
        """The inline module that asks to compute nodes name by reference (the ``data:`` URL
        whose SHA-256 is ``sha256``, hex), from the job store."""
        url = self.store.module(sha256)
        MODULES_SERVED.labels(outcome="not_found" if url is None else "served").inc()
        if url is None:
            raise NotFound(
                f"this requester holds no module with SHA-256 {sha256}",
                hint="the job that sent it may have been deleted; submit it again",
                component="Orchestrator",
            )
        return url

    async def presign_result_upload(self, node_id: str, job_id: str, execution_id: str) -> str:
        """Where node ``node_id`` uploads the results of its execution ``execution_id`` (of
        ``job_id``), which publishes with ``s3managed``: a pre-signed PUT URL into this
        requester's managed bucket. Only for the node the execution runs on, while it is
        under way."""
        bucket = self._managed_bucket
        if bucket is None:
            raise InvalidTransition(
                "this requester has no managed bucket for the s3managed publisher",
                hint="set Publishers.Types.S3Managed.Bucket on the requester",
                component="Orchestrator",
            )
        try:
            execution = self.store.get_execution(execution_id)
        except NotFound:
            execution = None
        if execution is None or execution.job_id != job_id or execution.node_id != node_id:
            # The same answer whether it does not exist or is another node's.
            raise PermissionDenied(
                f"execution {execution_id} of job {job_id} is not node {node_id}'s",
                component="Orchestrator",
            )
        if not execution.is_active():
            raise InvalidTransition(
                f"execution {execution_id} is {execution.compute_state.label}: its results "
                "can no longer be uploaded",
                component="Orchestrator",
            )
        job = self.store.get_job(job_id)
        if job.task.publisher.type.lower() != MANAGED_PUBLISHER:
            raise InvalidRequest(
                f"job {job_id} publishes with {job.task.publisher.type or 'no publisher'}, "
                "not s3managed",
                component="Orchestrator",
            )
        # Signing reads the requester's credentials, which may mean a file or the instance
        # metadata service the first time: not on the event loop.
        return await asyncio.to_thread(bucket.upload_url, job_id, execution_id)


def _no_version(job: Job, version: int) -> JobNotFound:
    """What a read of a version ``job`` never had answers (the field at fault named)."""
    return JobNotFound(
        f"job {job.id} has no version {version}",
        hint=f"its versions are 1 to {job.version}: list them with"
        f" `bacalhau job versions {job.id}`",
        details={"Field": "job_version"},
    )
