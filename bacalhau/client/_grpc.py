"""The asynchronous client of a requester's public gRPC API (``proto/bacalhau/v1/api.proto``).

It answers with the same models as :class:`~bacalhau.client.AsyncClient` (the REST client):
the API carries jobs, executions, history items and nodes as their Bacalhau v1 JSON, decoded
here by the models' own codecs, so both clients see exactly the same objects. Protobuf stays
in this module and its channel's (``_grpc_channel``): nothing they return or raise is a
generated type.

Errors: a failed call raises the :mod:`bacalhau.errors` class the server raised (see
:mod:`bacalhau.client._grpc_errors`).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bacalhau._proto.v1 import api_pb2, logs_pb2
from bacalhau.client._answers import LONG_RUNNING_JOB_TYPES, is_started
from bacalhau.client._decode import history_from_dict
from bacalhau.client._download import DownloadedResults
from bacalhau.client._fetch import download_results
from bacalhau.client._grpc_channel import (
    DEFAULT_GRPC_API_PORT,
    grpc_target_from_env,
)
from bacalhau.client._grpc_cluster import GrpcClusterCalls
from bacalhau.client._grpc_data import GrpcFetcher
from bacalhau.client._grpc_errors import error_from_status, lost_call
from bacalhau.client._logs import LogLine, LogStreamLost, resumed
from bacalhau.client._outage import DEFAULT_RECONNECT_GRACE, Outage
from bacalhau.client._types import (
    DiffResponse,
    HistoryPage,
    JobDetails,
    JobListPage,
    RerunResponse,
    SubmitResponse,
    WaitTimedOut,
)
from bacalhau.errors import BadQuery
from bacalhau.models import (
    Execution,
    Job,
    JobHistory,
    LogChunk,
    LogStream,
    Obj,
    PositionedLines,
    SpecConfig,
)

__all__ = [
    "DEFAULT_GRPC_API_PORT",
    "AsyncGrpcClient",
    "GrpcHistoryPage",
    "error_from_status",
    "grpc_target_from_env",
]

#: Longest the server holds one history long-poll; the client asks for at most this.
LONG_POLL_SECONDS = 30.0

_LOG_STREAMS = {
    logs_pb2.LOG_STREAM_TYPE_STDOUT: LogStream.STDOUT,
    logs_pb2.LOG_STREAM_TYPE_STDERR: LogStream.STDERR,
}


@dataclass(slots=True)
class GrpcHistoryPage(HistoryPage):
    """A :class:`HistoryPage` (its ``next_token`` is the SeqNum to read after, "" once the job
    is finished and nothing more will come) with what the gRPC answer adds: the job as of
    these items, and its executions when they were asked for."""

    job: Job | None = None
    executions: list[Execution] = field(default_factory=list)


def _job_of(doc: api_pb2.JobDocument) -> Job:
    return Job.from_dict(json.loads(doc.job_json), path="Job")


def _execution_of(doc: api_pb2.ExecutionDocument) -> Execution:
    # The API numbers execution states as Bacalhau v1.5.2+ does.
    return Execution.from_dict(json.loads(doc.execution_json), v152=True)


def _submitted(resp: api_pb2.SubmitJobResponse) -> SubmitResponse:
    return SubmitResponse(
        job_id=resp.job_id, evaluation_id=resp.evaluation_id, warnings=list(resp.warnings)
    )


def _history_of(item: api_pb2.HistoryItem) -> JobHistory:
    return history_from_dict(json.loads(item.item_json))


class AsyncGrpcClient(GrpcClusterCalls):
    """Talks to one requester's public gRPC API. Use as
    ``async with AsyncGrpcClient("127.0.0.1:1235") as client``.

    ``target`` is ``host:port`` (default from the environment: :func:`grpc_target_from_env`).
    A job is addressed by its ID, a unique prefix of it, or its name in ``namespace`` (""
    for the server's ``default``), which also applies to submitted jobs that name none.
    Plaintext by default, as the node serves it; with ``tls`` (or ``root_certificates``, PEM)
    the channel is TLS, for a node behind a TLS-terminating proxy. ``timeout`` bounds every
    call but long-polls (which get their wait on top) and log streams. ``credentials`` go
    with every call in the ``authorization`` metadata (by default the environment's, as
    :class:`~bacalhau.client.AsyncClient` reads them).

    Every failure is a :class:`~bacalhau.errors.BacalhauError` (see :func:`error_from_status`).
    """

    # -- jobs -------------------------------------------------------------------------------

    async def submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        idempotency_token: str = "",
        namespace: str = "",
        force: bool = False,
    ) -> SubmitResponse:
        """Submit a job (a :class:`Job` or its wire dict); ``namespace`` (else the client's)
        applies when the job names none. A job named as an existing job of its namespace
        updates that job (a new version); with the same spec that is refused
        (:class:`~bacalhau.errors.JobSpecUnchanged`) unless ``force``."""
        resp = await self._submit(
            job, idempotency_token=idempotency_token, namespace=namespace, force=force
        )
        return _submitted(resp)

    async def submit_and_wait(
        self,
        job: Job | Mapping[str, Any],
        *,
        timeout: float = 600.0,
        idempotency_token: str = "",
        namespace: str = "",
        force: bool = False,
    ) -> tuple[SubmitResponse, JobDetails]:
        """Submit a job and wait for it as :meth:`wait_for_job` does; returns the submit's
        answer and the job with its executions. One call when the job ends within the
        server's longest wait (the submit is held until then); otherwise
        :meth:`wait_for_job` goes on from there. Raises
        :class:`~bacalhau.client.WaitTimedOut` after ``timeout`` seconds (the job goes on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        resp = await self._submit(
            job,
            idempotency_token=idempotency_token,
            namespace=namespace,
            force=force,
            wait=max(0.0, min(timeout, LONG_POLL_SECONDS)),
        )
        submitted = _submitted(resp)
        if resp.HasField("job"):
            executions = await self._with_the_rest(
                resp.executions,
                resp.executions_next_token,
                job_id=resp.job.id,
                version=resp.job.version,
            )
            details = JobDetails(job=_job_of(resp.job), executions=executions)
            if details.job.state.is_terminal():
                return submitted, details
        remaining = max(0.0, deadline - loop.time())
        return submitted, await self.wait_for_job(submitted.job_id, timeout=remaining)

    async def _submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        idempotency_token: str,
        namespace: str,
        force: bool = False,
        wait: float = 0.0,
    ) -> api_pb2.SubmitJobResponse:
        """One SubmitJob call; with ``wait``, held until the job ends (with its executions)."""
        body = job.to_dict() if isinstance(job, Job) else dict(job)
        resp: api_pb2.SubmitJobResponse = await self._call(
            self._job_service.SubmitJob,
            api_pb2.SubmitJobRequest(
                job_json=json.dumps(body),
                namespace=namespace or self.namespace,
                idempotency_token=idempotency_token,
                wait_seconds=wait,
                include_executions=wait > 0,
                force=force,
            ),
            timeout=wait + self._timeout,
        )
        return resp

    async def diff_job(self, job: Job | Mapping[str, Any]) -> DiffResponse:
        """What submitting ``job`` would change in the existing job of its name: the diff of
        the job's YAML, "" when nothing would change. Raises
        :class:`~bacalhau.errors.NotFound` when no job has the name."""
        body = job.to_dict() if isinstance(job, Job) else dict(job)
        resp: api_pb2.DiffJobResponse = await self._call(
            self._job_service.DiffJob,
            api_pb2.DiffJobRequest(job_json=json.dumps(body), namespace=self.namespace),
        )
        return DiffResponse(diff=resp.diff, warnings=list(resp.warnings))

    async def get_job(
        self, job_id: str, *, history: bool = False, executions: bool = False, version: int = 0
    ) -> JobDetails:
        """A job by ID, name or unique ID prefix, optionally with its history and
        executions: its latest version, or ``version`` (versions count from 1)."""
        resp: api_pb2.GetJobResponse = await self._call(
            self._job_service.GetJob,
            api_pb2.GetJobRequest(
                job_id=job_id,
                include_history=history,
                include_executions=executions,
                namespace=self.namespace,
                job_version=version,
            ),
        )
        items = [_history_of(h) for h in resp.history]
        if resp.history_more:
            items += await self._history_after(
                resp.job.id, resp.job.version, items[-1].seq_num if items else 0
            )
        listed = await self._with_the_rest(
            resp.executions,
            resp.executions_next_token,
            job_id=resp.job.id,
            version=resp.job.version,
        )
        return JobDetails(job=_job_of(resp.job), history=items, executions=listed)

    async def _history_after(self, job_id: str, version: int, after: int) -> list[JobHistory]:
        """The items of ``version`` of the job after SeqNum ``after``, as they are now: what
        did not fit in an answer of the job."""
        items: list[JobHistory] = []
        while True:
            resp: api_pb2.JobHistoryResponse = await self._call(
                self._job_service.JobHistory,
                api_pb2.JobHistoryRequest(
                    job_id=job_id,
                    after_seq=after,
                    limit=1000,
                    namespace=self.namespace,
                    job_version=version,
                ),
            )
            if not resp.items:
                return items
            items += [_history_of(h) for h in resp.items]
            after = resp.items[-1].seq_num

    async def _with_the_rest(
        self,
        first: Iterable[api_pb2.ExecutionDocument],
        token: str,
        *,
        job_id: str,
        version: int = 0,
        all_versions: bool = False,
    ) -> list[Execution]:
        """``first`` and, when an answer could not hold them all (``token``), the executions
        after them, page by page."""
        executions = [_execution_of(e) for e in first]
        while token:
            resp: api_pb2.ListExecutionsResponse = await self._call(
                self._job_service.ListExecutions,
                api_pb2.ListExecutionsRequest(
                    job_id=job_id,
                    namespace=self.namespace,
                    job_version=version,
                    all_job_versions=all_versions,
                    next_token=token,
                ),
            )
            executions += [_execution_of(e) for e in resp.executions]
            token = resp.next_token
        return executions

    async def list_jobs(
        self,
        *,
        namespace: str = "",
        labels: str = "",
        limit: int = 0,
        next_token: str = "",
        order_by: str = "",
        reverse: bool = False,
    ) -> JobListPage:
        """One page of jobs; pass the answer's ``next_token`` for the next ("" on the last)."""
        resp: api_pb2.ListJobsResponse = await self._call(
            self._job_service.ListJobs,
            api_pb2.ListJobsRequest(
                namespace=namespace,
                labels=labels,
                order_by=order_by,
                reverse=reverse,
                limit=limit,
                next_token=next_token,
            ),
        )
        return JobListPage(items=[_job_of(j) for j in resp.jobs], next_token=resp.next_token)

    async def executions(
        self, job_id: str, *, version: int = 0, all_versions: bool = False
    ) -> list[Execution]:
        """The executions of the job's latest version, of ``version`` or (``all_versions``)
        of every version, oldest first (in as many calls as their size takes)."""
        resp: api_pb2.ListExecutionsResponse = await self._call(
            self._job_service.ListExecutions,
            api_pb2.ListExecutionsRequest(
                job_id=job_id,
                namespace=self.namespace,
                job_version=version,
                all_job_versions=all_versions,
            ),
        )
        return await self._with_the_rest(
            resp.executions,
            resp.next_token,
            job_id=job_id,
            version=version,
            all_versions=all_versions,
        )

    async def history(
        self,
        job_id: str,
        *,
        event_type: str = "all",
        execution_id: str = "",
        node_id: str = "",
        limit: int = 0,
        next_token: str = "",
        wait: float = 0.0,
        until_terminal: bool = False,
        include_executions: bool = False,
        version: int = 0,
        all_versions: bool = False,
    ) -> GrpcHistoryPage:
        """One page of history after ``next_token`` (the previous page's): of the job's latest
        version, of ``version`` or (``all_versions``) of every version. With ``wait`` > 0
        the server holds the call until there is something new (or ``wait`` seconds pass);
        with ``until_terminal`` as well, a batch or ops job's call is held until the job ends.
        ``include_executions`` brings the job's executions with the answer."""
        try:
            after_seq = int(next_token) if next_token else 0
        except ValueError:
            after_seq = -1
        if after_seq < 0:
            raise BadQuery(
                f"invalid next_token {next_token[:100]!r}",
                field="next_token",
                hint="pass the next_token of the previous page of this client",
            )
        wait = max(0.0, min(wait, LONG_POLL_SECONDS))
        resp: api_pb2.JobHistoryResponse = await self._call(
            self._job_service.JobHistory,
            api_pb2.JobHistoryRequest(
                job_id=job_id,
                after_seq=after_seq,
                event_type=event_type,
                execution_id=execution_id,
                node_id=node_id,
                limit=limit,
                wait_seconds=wait,
                until="terminal" if until_terminal else "",
                include_executions=include_executions,
                namespace=self.namespace,
                job_version=version,
                all_job_versions=all_versions,
            ),
            timeout=wait + self._timeout,
        )
        executions = await self._with_the_rest(
            resp.executions,
            resp.executions_next_token,
            job_id=resp.job.id or job_id,
            version=version,
            all_versions=all_versions,
        )
        return GrpcHistoryPage(
            items=[_history_of(h) for h in resp.items],
            next_token=str(resp.next_after_seq) if resp.more else "",
            job=_job_of(resp.job) if resp.HasField("job") else None,
            executions=executions,
        )

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_event: Callable[[JobHistory], None] | None = None,
        reconnect_grace: float = DEFAULT_RECONNECT_GRACE,
    ) -> JobDetails:
        """Follow a job until it is terminal and return it with its executions.

        A daemon or service job runs until stopped: for those the wait ends once the job
        runs with its executions started, as :meth:`AsyncClient.wait_for_job
        <bacalhau.client.AsyncClient.wait_for_job>`. Each long-poll brings the job and its
        executions, so no other call is made; with nobody watching the events
        (``on_event``), one call is held until the job ends. Raises
        :class:`~bacalhau.client.WaitTimedOut` after ``timeout`` seconds (the job goes on).
        A requester restarting is ridden out for up to ``reconnect_grace`` seconds, as by
        the REST client.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        token = ""
        outage = Outage(job_id, reconnect_grace)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimedOut(f"job {job_id} is still running after {timeout:g}s")
            page = await outage.ride(
                functools.partial(
                    self.history,
                    job_id,
                    next_token=token,
                    limit=100,
                    until_terminal=on_event is None,
                    include_executions=True,
                ),
                deadline,
            )
            if on_event is not None:
                for item in page.items:
                    on_event(item)
            assert page.job is not None  # every answer carries it
            details = JobDetails(job=page.job, executions=page.executions)
            if not page.next_token:
                return details
            if page.job.type in LONG_RUNNING_JOB_TYPES and is_started(details):
                return details
            token = page.next_token

    async def stop_job(self, job_id: str, reason: str = "") -> str:
        """Stop a job; returns the evaluation ID ("" when there was nothing to do). A finished
        job's stop raises :class:`~bacalhau.errors.ConflictJobState`."""
        resp: api_pb2.StopJobResponse = await self._call(
            self._job_service.StopJob,
            api_pb2.StopJobRequest(job_id=job_id, reason=reason, namespace=self.namespace),
        )
        return resp.evaluation_id

    async def rerun_job(self, job_id: str, reason: str = "", *, version: int = 0) -> RerunResponse:
        """Run a job again as a new version of the same spec."""
        resp: api_pb2.RerunJobResponse = await self._call(
            self._job_service.RerunJob,
            api_pb2.RerunJobRequest(
                job_id=job_id, reason=reason, namespace=self.namespace, job_version=version
            ),
        )
        return RerunResponse(
            job_id=resp.job_id, job_version=resp.job_version, evaluation_id=resp.evaluation_id
        )

    async def job_versions(self, job_id: str) -> list[Job]:
        """Every version of a job's spec, oldest first (all pages of them)."""
        versions: list[Job] = []
        token = ""
        while True:
            resp: api_pb2.ListJobVersionsResponse = await self._call(
                self._job_service.ListJobVersions,
                api_pb2.ListJobVersionsRequest(
                    job_id=job_id, namespace=self.namespace, next_token=token
                ),
            )
            versions.extend(_job_of(v) for v in resp.versions)
            token = resp.next_token
            if not token:
                return versions

    async def results(self, job_id: str) -> list[SpecConfig]:
        """Where the job's completed executions published their results."""
        resp: api_pb2.GetResultsResponse = await self._call(
            self._job_service.GetResults,
            api_pb2.GetResultsRequest(job_id=job_id, namespace=self.namespace),
        )
        return [
            SpecConfig.from_obj(Obj(json.loads(r), f"Items[{i}]"))
            for i, r in enumerate(resp.result_json)
        ]

    async def download_results(
        self,
        job_id: str,
        output_dir: str | Path | None = None,
        *,
        raw: bool = False,
        timeout: float = 300.0,
    ) -> DownloadedResults:
        """Download the job's results into ``output_dir`` (default ``./job-<short id>``), as
        :meth:`AsyncClient.download_results <bacalhau.client.AsyncClient.download_results>`
        does: content published to IPFS comes from the requester (``DataService.GetData``),
        a URL (a compute node's local publisher, a pre-signed S3 URL) straight from there."""
        results = await self.results(job_id)
        job = (await self.get_job(job_id)).job
        fetcher = GrpcFetcher(self)
        try:
            return await download_results(
                fetcher, job_id, job, results, output_dir, raw=raw, timeout=timeout
            )
        finally:
            await fetcher.close()

    async def logs(
        self,
        job_id: str,
        *,
        execution_id: str = "",
        follow: bool = False,
        tail: int = 0,
        version: int = 0,
        resume: str = "",
        reconnect_grace: float = DEFAULT_RECONNECT_GRACE,
    ) -> AsyncIterator[LogLine]:
        """The output of the job's latest execution (or ``execution_id``) line by line, with
        each line's newline: what was written so far (its last ``tail`` lines per stream when
        ``tail`` > 0), then, with ``follow``, new lines until the execution ends. An unknown
        job raises :class:`~bacalhau.errors.NotFound` at the first iteration. Leaving the
        loop early cancels the stream, which stops the relay from the compute node.

        Each line carries the position after it (:attr:`LogLine.resume`); given back as
        ``resume``, the output goes on from there. A stream lost to a requester restart is
        so resumed by itself, tried again for up to ``reconnect_grace`` seconds."""

        def opened(position: str) -> AsyncIterator[LogLine]:
            request = api_pb2.StreamJobLogsRequest(
                job_id=job_id,
                execution_id=execution_id,
                follow=follow,
                tail=tail,
                namespace=self.namespace,
                job_version=version,
                resume=position or resume,
            )
            return self._log_lines(request)

        async for line in resumed(opened, job_id, grace=reconnect_grace):
            yield line

    async def _log_lines(self, request: api_pb2.StreamJobLogsRequest) -> AsyncIterator[LogLine]:
        """One StreamJobLogs call's lines; a call lost for want of the server (no error
        of the server's own) raises :class:`LogStreamLost`."""
        call = self._job_service.StreamJobLogs(request, metadata=self._metadata)
        lines = PositionedLines()
        try:
            async for chunk in call:
                stream = _LOG_STREAMS.get(chunk.stream, LogStream.STDOUT)
                got = LogChunk(stream, chunk.offset, chunk.data, execution_id=chunk.execution_id)
                for kind, text, after in lines.feed(got):
                    yield LogLine(kind, text, after.token())
        except grpc.aio.AioRpcError as exc:
            failure = self._failure(exc)
            if lost_call(exc):
                raise LogStreamLost(
                    f"the log stream from the gRPC API at {self.target} ended unexpectedly "
                    f"({failure.message}); the output may be incomplete",
                    hint=failure.hint,
                ) from None
            raise failure from None
        finally:
            call.cancel()
        for kind, text, after in lines.flush():
            yield LogLine(kind, text, after.token())
